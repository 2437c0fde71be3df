/*
 * cli.h: the command line. `runner FILE [key=value ...]` runs an experiment; the other
 * commands are in the table in cli.c. Returns the process exit code (DESIGN.md,
 * Conventions). Covered by tests/test_cli.sh.
 */
#ifndef RUNNER_CLI_H
#define RUNNER_CLI_H

int cli_main(int argc, char **argv);

#endif
