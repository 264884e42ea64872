#include <stdio.h>
#include "ops.h"

int main(void) {
    printf("sum=%d product=%d\n", add(40, 2), mul(6, 7));
    return 0;
}
