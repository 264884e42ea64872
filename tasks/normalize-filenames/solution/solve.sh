#!/bin/bash
find /app/photos -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) | while IFS= read -r f; do
  dir=$(dirname "$f"); base=$(basename "$f")
  new=$(printf '%s' "${base%.*}" | tr 'A-Z' 'a-z').jpg
  [ "$base" = "$new" ] || mv "$f" "$dir/$new"
done
