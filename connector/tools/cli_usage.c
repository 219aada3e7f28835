/*
 * cli_usage.c -- the programs' usage errors and --version (cli_usage.h),
 * so `aimdb --bogus`, `aimdb-mcu-sim --bogus` and `aimdb-bridge --bogus`
 * answer alike.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

#include "aimdb/version.h"
#include "cli_usage.h"

int cli_usage_error(const char *prog, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    return CLI_EXIT_USAGE;
}

int cli_bad_option(const char *prog, int opt, char *const argv[]) {
    const char *given = optind > 0 ? argv[optind - 1] : "?";
    if (opt == ':') return cli_usage_error(prog, "%s needs a value", given);
    return cli_usage_error(prog, "unknown option '%s'", given);
}

int cli_print_version(const char *prog) {
    printf("%s %s\n", prog, AIMDB_VERSION);
    return CLI_EXIT_OK;
}
