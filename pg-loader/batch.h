// The pure half of batching (SPEC "Keys and values", a namespace's batch_query): the $1 array
// literal, the distinct ids of a batch, and turning the batch query's rows into one answer per
// load. No SQL and no threads, so it is unit-tested without a database.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pg-loader/loader.h"
#include "pg-loader/replica.h"
#include "pg-loader/value.h"

namespace corral::pg {

// What one id of a batch gets: kValue with the value, kNotFound, or kError with a one-line reason.
struct KeyAnswer {
  LoadOutcome::Kind kind = LoadOutcome::Kind::kNotFound;
  std::string data;
};

// A PostgreSQL array literal of `ids` as text elements, for binding to $1: every element is
// double-quoted, with `"` and `\` backslash-escaped, so commas, braces, spaces, the word NULL and
// the empty string all survive: {"1","a\"b",""}. No ids → "{}". (A NUL byte cannot be sent in a
// text parameter at all, so ids never hold one.)
std::string EncodeTextArray(std::span<const std::string> ids);

// The loads of one batch: the distinct ids to ask for, in first-seen order, and for each load (in
// the batch's order) the index of its id in `ids`.
struct BatchPlan {
  std::vector<std::string> ids;
  std::vector<size_t> slot;
};
BatchPlan PlanBatch(std::span<const Job> jobs);

// Collects the rows of a batch query. Each row's first column is an id (as text) and the rest is
// the value, read as the single query's row would be (RowToValue). Single-threaded use.
class BatchAnswers {
 public:
  // `ids` are the distinct ids asked for; they are borrowed and must outlive this object.
  explicit BatchAnswers(std::span<const std::string> ids);

  // Records one row. A row whose id was not asked for is ignored. `value` is borrowed for the call.
  void AddRow(std::string_view id, std::span<const Column> value);

  // One answer per asked id, in `ids` order: no row → kNotFound; one row → its value (a single
  // NULL column → kNotFound); several rows → kError "query returned N rows", as for one load.
  std::vector<KeyAnswer> Take();

 private:
  std::unordered_map<std::string_view, size_t> index_;
  std::vector<KeyAnswer> answers_;
  std::vector<size_t> rows_;  // rows seen per id
};

// The same answer for every id of a batch (an SQL error, or a result of the wrong shape).
std::vector<KeyAnswer> AnswerAll(size_t ids, LoadOutcome::Kind kind, const std::string& data);

// One outcome per load of `plan`, in batch order: load i gets answers[plan.slot[i]], with the
// server that ran the query and the query's time. `answers` has one entry per plan.ids.
std::vector<LoadOutcome> FanOut(const BatchPlan& plan, std::span<const KeyAnswer> answers,
                                const std::string& replica, int64_t micros);

}  // namespace corral::pg
