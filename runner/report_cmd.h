/*
 * report_cmd.h: `runner report RUN_DIR`: a finished run's hooks called again on its files
 * (report.lua regenerates report.html this way).
 *
 *     runner report results/quick/20261125-001512
 *
 * Reads RUN_DIR/config.yaml and RUN_DIR/summary.json; the hooks are config.yaml's `hooks:`
 * (paths as the run resolved them, read from the current directory; a hook not found there
 * is looked for in the project's hooks/, by its path and then by its file name). run's
 * fields come from summary.json (name, device, precision, commit, started, epochs) and the
 * class names from confusion_matrix.csv; then every hook's on_start and on_end run, with
 * result.stopped = summary.json's "stopped". Hook output goes to the terminal only (run.log
 * is left as the run wrote it). Status: STATUS_OK; STATUS_RUNTIME when a hook failed (to
 * load, or in a call); STATUS_CONFIG when RUN_DIR is not a finished run (the message names
 * the missing file) or a hook cannot be found. Covered by tests/test_cli.sh.
 */
#ifndef RUNNER_REPORT_CMD_H
#define RUNNER_REPORT_CMD_H

#include "common.h"

MUST_CHECK enum status report_run(const char *run_dir);

#endif
