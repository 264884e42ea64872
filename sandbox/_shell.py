"""The bash side of a session: scripts sent to the shells inside the container.

Everything here runs with bash builtins only (no fork, no coreutils), so it works in any image
that has bash and costs microseconds per command. Two shells live in every container:

* the *control shell* is PID 1. Its stdin is the container's attached stdin, so when the
  harness process goes away (even by SIGKILL) it reads EOF, exits, and the engine removes the
  container. It kills a timed-out command's processes without needing a free pid slot, which
  matters when the command is a fork bomb sitting at the pids limit.
* the *session shell* is one ``docker exec`` whose stdin/stdout/stderr stay attached. Every
  ``run()`` is one line written to its stdin; its output comes back framed by random markers.
"""

from __future__ import annotations

STATE_FILE = "/dev/shm/.harness-session-state"

CONTROL_INIT = r"""
# Replies to the harness (__h_ps, __h_killall) go to fd 97, the container's own stdout, which
# the harness reads through its attach connection; everything else is discarded.
exec 97>&1 >/dev/null 2>&1
# The session shells PID 1 started (pid -> start time), which no other command's kill takes.
declare -A __h_shells=()
# __h_kill NONCE SHELL_PID LAST_PID COMMAND_ID
# Kill the session shell first, so it cannot start the rest of the command line, then every
# process created since the command began (pid > LAST_PID) whose oldest new
# ancestor was forked by the session shell, or that was orphaned (reparented to PID 1), or
# whose environment carries the command's id (daemons that escaped with setsid). Processes
# started by earlier commands, such as background servers, are spared. Unless NONCE is "-",
# replies "END NONCE PID:START ..." naming what it killed (they may still be dying).
__h_kill() {
  local nonce=$1 sh=$2 last=$3 id=$4 round p q line rest found e
  local -A pp st hit=()
  local -a killed=()
  builtin kill -9 "$sh" 2>/dev/null
  # Targets are stopped first, round after round until no new one appears (a stopped process
  # cannot fork, so a fork bomb stops growing), then killed together.
  for round in {1..64}; do
    pp=() st=()
    for p in /proc/[0-9]*; do
      builtin read -r line 2>/dev/null < "$p/stat" || continue
      rest=${line##*) }
      builtin set -- $rest
      pp[${p#/proc/}]=$2
      st[${p#/proc/}]=${20}
    done
    found=0
    for p in "${!pp[@]}"; do
      (( p > last && p != $$ )) || continue
      [[ -z ${hit[$p:${st[$p]}]} ]] || continue
      [[ ${__h_shells[$p]} != "${st[$p]}" ]] || continue  # another session's shell
      q=${pp[$p]}
      while (( q > last )); do q=${pp[$q]:-0}; done
      if (( q != sh && q != 1 )); then
        q=
        while IFS= builtin read -r -d '' e; do
          [[ $e == "HARNESS_COMMAND_ID=$id" ]] && { q=1; break; }
        done 2>/dev/null < "/proc/$p/environ"
        [[ -n $q ]] || continue
      fi
      builtin kill -STOP "$p" 2>/dev/null && found=1 && hit[$p:${st[$p]}]=1
    done
    (( found )) || break
  done
  for p in "${!hit[@]}"; do
    builtin kill -9 "${p%%:*}" 2>/dev/null && killed+=("$p")
  done
  [[ $nonce == - ]] || builtin printf 'BEGIN %s\0END %s %s\0' "$nonce" "$nonce" "${killed[*]}" >&97
}
# __h_rec PID: one process as a record: "PID START PPID STATE ARGC\0NAME\0", then its ARGC
# arguments, each NUL-terminated. START is field 22 of /proc/PID/stat (clock ticks after boot):
# with the pid it names one process, never a later one that reuses the pid.
__h_rec() {
  local line rest name a
  local -a args=()
  builtin read -r -d '' line 2>/dev/null < "/proc/$1/stat"
  [[ $line == *") "* ]] || return 1
  rest=${line##*) }
  name=${line#*(}
  name=${name%) *}
  while IFS= builtin read -r -d '' a || [[ -n $a ]]; do args+=("$a"); done 2>/dev/null < "/proc/$1/cmdline"
  builtin set -- "$1" $rest
  [[ ${21} =~ ^[0-9]+$ && $3 =~ ^[0-9]+$ ]] || return 1
  builtin printf '%s %s %s %s %s\0%s\0' "$1" "${21}" "$3" "$2" "${#args[@]}" "$name" >&97
  (( ${#args[@]} == 0 )) || builtin printf '%s\0' "${args[@]}" >&97
}
# __h_ps NONCE: "BEGIN NONCE\0", a record of every process but PID 1, "END NONCE\0".
__h_ps() {
  local p
  builtin printf 'BEGIN %s\0' "$1" >&97
  for p in /proc/[0-9]*; do
    [[ ${p#/proc/} == 1 ]] || __h_rec "${p#/proc/}"
  done
  builtin printf 'END %s\0' "$1" >&97
}
# __h_spawn NONCE IN OUT ERR [DIR]: start a session shell on three FIFOs the harness made in
# /dev/shm (no engine round trip, unlike a docker exec); replies "END NONCE PID". PID 1's
# reply channel (fd 97) is not passed on.
__h_spawn() {
  local nonce=$1 line rest
  if [[ -n $5 ]]; then
    ( builtin cd -- "$5" 2>/dev/null; builtin unset PWD OLDPWD SHLVL; builtin exec bash --noprofile --norc ) <"$2" >"$3" 2>"$4" 97>&- &
  else
    ( builtin unset PWD OLDPWD SHLVL; builtin exec bash --noprofile --norc ) <"$2" >"$3" 2>"$4" 97>&- &
  fi
  builtin read -r -d '' line 2>/dev/null < "/proc/$!/stat"
  rest=${line##*) }
  builtin set -- $rest
  __h_shells[$!]=${20}
  builtin printf 'BEGIN %s\0END %s %s\0' "$nonce" "$nonce" "$!" >&97
}
# __h_status NONCE PID: "END NONCE running", or the exit status of a shell __h_spawn started.
__h_status() {
  local s=running
  if ! builtin kill -0 "$2" 2>/dev/null; then
    builtin wait "$2" 2>/dev/null
    s=$?
    builtin unset "__h_shells[$2]"
  fi
  builtin printf 'BEGIN %s\0END %s %s\0' "$1" "$1" "$s" >&97
}
# __h_killall NONCE [PID:START ...]: kill every process but PID 1 and those listed, a fork
# bomb at the pids limit and setsid daemons included, with builtins only (no pid slot needed).
# First every process is stopped: SIGSTOP cannot be caught and a stopped process cannot fork,
# so the set to kill stops growing; passes repeat until one finds nothing new. Then each is
# killed, again until nothing is left (one may have been continued before it was stopped).
# Replies "BEGIN NONCE\0", a record of each process killed, "END NONCE LEFT\0"; LEFT counts
# the processes that could not be killed (signals refused: PID 1 is not root).
__h_killall() {
  local nonce=$1 p pid line id found left hit t0=$SECONDS
  local -A keep=() seen=() told=()
  builtin shift
  for p in "$@"; do keep[$p]=1; done
  builtin printf 'BEGIN %s\0' "$nonce" >&97
  while :; do
    found=0
    for p in /proc/[0-9]*; do
      pid=${p#/proc/}
      (( pid != 1 )) || continue
      line=
      builtin read -r -d '' line 2>/dev/null < "$p/stat"
      [[ -n $line ]] || continue
      builtin set -- ${line##*) }
      id=$pid:${20}
      [[ -z ${keep[$id]} && -z ${seen[$id]} && $1 != [ZX] ]] || continue
      seen[$id]=1
      found=1
      builtin kill -STOP "$pid" 2>/dev/null
    done
    (( found && SECONDS - t0 < 30 )) || break
  done
  while :; do
    left=0 hit=0
    for p in /proc/[0-9]*; do
      pid=${p#/proc/}
      (( pid != 1 )) || continue
      line=
      builtin read -r -d '' line 2>/dev/null < "$p/stat"
      [[ -n $line ]] || continue
      builtin set -- ${line##*) }
      id=$pid:${20}
      [[ -z ${keep[$id]} && $1 != [ZX] ]] || continue
      [[ -n ${told[$id]} ]] || { told[$id]=1; __h_rec "$pid"; }
      if builtin kill -9 "$pid" 2>/dev/null; then hit=1; elif [[ ! -e $p ]]; then continue; fi
      left=$((left + 1))
    done
    (( left && hit && SECONDS - t0 < 30 )) || break
  done
  builtin printf 'END %s %s\0' "$nonce" "$left" >&97
}
"""

SESSION_INIT = r"""
# Markers go to copies of the original stdout/stderr, so a command that redirects the shell's
# own output (exec >log, exec 2>&1) cannot hide them.
exec 98>&1 99>&2
builtin shopt -s expand_aliases
builtin export HARNESS_COMMAND_ID=0
__h_oomf=
if [[ -r /sys/fs/cgroup/memory/memory.oom_control ]]; then __h_oomf=/sys/fs/cgroup/memory/memory.oom_control
elif [[ -r /sys/fs/cgroup/memory.events ]]; then __h_oomf=/sys/fs/cgroup/memory.events; fi
__h_oomc=0
__h_oomread() {
  local k v
  __h_oom=0
  [[ -n $__h_oomf ]] || return 0
  while builtin read -r k v; do
    if [[ $k == oom_kill ]]; then (( v > __h_oomc )) && __h_oom=1; __h_oomc=$v; break; fi
  done 2>/dev/null < "$__h_oomf"
}
__h_oomread
"""

RESTORE = r"""
builtin cd -- %(cwd)s 2>/dev/null
[[ -r %(state)s ]] && builtin source %(state)s >/dev/null 2>&1
"""


def quote(text: bytes) -> bytes:
    """Single-quote ``text`` for bash: exact for every byte except NUL."""
    if b"\0" in text:
        raise ValueError("a shell command cannot contain a NUL byte")
    return b"'" + text.replace(b"'", b"'\\''") + b"'"


def command_line(
    command: bytes,
    nonce: bytes,
    command_id: int,
    cwd: bytes | None = None,
    state_file: str = STATE_FILE,
) -> bytes:
    """One line for the session shell that runs ``command`` and reports around it.

    The command runs through ``eval`` in the shell itself (not a subshell), so ``cd``,
    exports, functions and aliases persist; its stdin is /dev/null so it can never read the
    next command. The start marker carries the last pid allocated before the command, which is
    how a timeout finds exactly the processes this command created.
    """
    n = nonce
    run = b"builtin eval " + quote(command) + b" </dev/null; __h_rc=$?"
    if cwd is not None:
        # Run in cwd, then go back, unless the command itself changed directory.
        run = (
            b"__h_prev=$PWD; if builtin cd -- "
            + quote(cwd)
            + b"; then __h_in=$PWD; "
            + run
            + b'; [[ $PWD == "$__h_in" ]] && builtin cd -- "$__h_prev"; else __h_rc=1; fi'
        )
    head = (
        b"HARNESS_COMMAND_ID=%d; builtin read -r _ _ _ _ __h_lp </proc/loadavg;"
        b" builtin printf '%%sS%%s\\0' %s \"$__h_lp\" >&98; " % (command_id, n)
    )
    tail = (
        b"__h_oomread;"
        b' builtin printf \'%%sE%%s %%s %%s %%s\\0\' %s "$__h_rc" "$__h_oom" "$$" "$PWD" >&98;'
        b" builtin printf '%%sE\\0' %s >&99;"
        b" { builtin declare -p; builtin declare -f; builtin alias -p; builtin shopt -p;"
        b" builtin set +o; } >%s 2>/dev/null\n" % (n, n, state_file.encode())
    )
    return head + run + b"\n" + tail


_PLAIN = frozenset(range(0x20, 0x7F)) - {ord("%"), ord("\\"), ord("'")}


def printf_format(data: bytes) -> bytes:
    """A single-quoted printf format that prints exactly ``data`` (NUL bytes included):
    printable ASCII as is, everything else as a three-digit octal escape."""
    out = bytearray(b"'")
    for b in data:
        if b in _PLAIN:
            out.append(b)
        elif b == 0x25:  # %
            out += b"%%"
        else:
            out += b"\\%03o" % b
    out += b"'"
    return bytes(out)
