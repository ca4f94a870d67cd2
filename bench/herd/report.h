// corral-herd's outputs: the table on stdout, results.json, results.csv, and one hand-written SVG
// per scenario (DB queries/s and p99 over time, one line per target; goodput too for the steady
// scenarios).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "bench/herd/options.h"
#include "bench/herd/stats.h"

namespace corral::herd {

// One section per scenario, one row per run; notes and scenario figures under each section.
void PrintTable(const Options& options, const std::vector<RunResult>& runs, std::ostream& out);

// Writes results.json, results.csv and <scenario>.svg into `dir` (created if missing).
// Returns "" or the first error.
std::string WriteOutputs(const Options& options, const std::vector<RunResult>& runs,
                         const std::string& dir);

// The SVG document for one scenario's runs (all of them must be of that scenario).
std::string RenderSvg(const std::string& scenario, const std::string& subtitle,
                      const std::vector<const RunResult*>& runs);

// What a scenario did, in one line (for titles): "1000 clients, one cold key".
std::string DescribeScenario(const Options& options, const std::string& scenario);

}  // namespace corral::herd
