/*
 * cli_usage.h -- how every program of AimDB (aimdb, aimdb-mcu-sim,
 * aimdb-bridge) meets its command line: the exit codes, a usage error as
 * one line and a pointer to --help (never the whole usage text on stderr),
 * and --version.  Library aimdb_cli_usage, libc only, so the programs on
 * either Paho flavour share it.
 */
#ifndef AIMDB_CLI_USAGE_H
#define AIMDB_CLI_USAGE_H

/* Exit codes of the programs. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1 /* error reply, timeout, broker refused or unreachable */
#define CLI_EXIT_USAGE 2   /* bad command line */

/* What an option parser returns besides CLI_EXIT_USAGE: go on, or --help
 * or --version was given (print it and exit CLI_EXIT_OK). */
#define CLI_PARSED 0
#define CLI_ASKED_HELP 1
#define CLI_ASKED_VERSION 3

#define CLI_VERSION_HELP "  --version          print the version and exit\n"

/* Print "PROG: MESSAGE" and "Try 'PROG --help'." on stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The getopt_long problem at argv[optind - 1] (opt '?': unknown, ':': no
 * value) as a usage error. */
int cli_bad_option(const char *prog, int opt, char *const argv[]);

/* Print "PROG VERSION" (aimdb/version.h) on stdout; returns CLI_EXIT_OK. */
int cli_print_version(const char *prog);

#endif
