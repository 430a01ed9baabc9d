/* tunedrv.c — `tlc tune` as a program of its own, for bench/tune/run.sh and
 * tests/tune/suite.sh while tlc's command table does not route `tune` yet. */
#include "tune.h"

int main(int argc, char **argv) {
    argv[0] = "tune";
    return tl_tune_main(argc, argv);
}
