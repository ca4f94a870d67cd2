// Batching without the database: array-literal encoding, de-duplication of ids, and the fan-out of
// a batch query's rows to the loads that asked.
#include "pg-loader/batch.h"

#include <optional>
#include <utility>

namespace corral::pg {

using Kind = LoadOutcome::Kind;

std::string EncodeTextArray(std::span<const std::string> ids) {
  size_t size = 2;
  for (const std::string& id : ids) size += id.size() + 3;
  std::string out;
  out.reserve(size);
  out.push_back('{');
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out.push_back(',');
    // Quoted elements keep everything but `"` and `\` literally (array_in's rules).
    out.push_back('"');
    for (const char c : ids[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

BatchPlan PlanBatch(std::span<const Job> jobs) {
  BatchPlan plan;
  plan.slot.reserve(jobs.size());
  std::unordered_map<std::string_view, size_t> seen;
  // The views point into `jobs`, which outlives the map; plan.ids may reallocate, so not there.
  for (const Job& job : jobs) {
    auto [it, inserted] = seen.try_emplace(job.id, plan.ids.size());
    if (inserted) plan.ids.push_back(job.id);
    plan.slot.push_back(it->second);
  }
  return plan;
}

BatchAnswers::BatchAnswers(std::span<const std::string> ids)
    : answers_(ids.size()), rows_(ids.size(), 0) {
  index_.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) index_.try_emplace(ids[i], i);
}

void BatchAnswers::AddRow(std::string_view id, std::span<const Column> value) {
  auto it = index_.find(id);
  if (it == index_.end()) return;  // not asked for (e.g. the query normalised the id)
  const size_t i = it->second;
  KeyAnswer& answer = answers_[i];
  if (++rows_[i] > 1) {
    answer.kind = Kind::kError;
    answer.data = "query returned " + std::to_string(rows_[i]) + " rows";
    return;
  }
  std::optional<std::string> text = RowToValue(value);
  if (text) {
    answer.kind = Kind::kValue;
    answer.data = std::move(*text);
  } else {
    answer.kind = Kind::kNotFound;
  }
}

std::vector<KeyAnswer> BatchAnswers::Take() { return std::move(answers_); }

std::vector<KeyAnswer> AnswerAll(size_t ids, Kind kind, const std::string& data) {
  return std::vector<KeyAnswer>(ids, KeyAnswer{kind, data});
}

std::vector<LoadOutcome> FanOut(const BatchPlan& plan, std::span<const KeyAnswer> answers,
                                const std::string& replica, int64_t micros) {
  std::vector<LoadOutcome> outcomes;
  outcomes.reserve(plan.slot.size());
  for (const size_t slot : plan.slot) {
    LoadOutcome outcome;
    if (slot < answers.size()) {
      outcome.kind = answers[slot].kind;
      outcome.data = answers[slot].data;
    } else {
      outcome.kind = Kind::kError;
      outcome.data = "batch answer missing";
    }
    outcome.replica = replica;
    outcome.micros = micros;
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

}  // namespace corral::pg
