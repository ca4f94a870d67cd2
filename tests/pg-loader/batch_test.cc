// Batching without a database: the $1 array literal, de-duplication of ids, how a batch query's
// rows become answers, and the fan-out of answers to the loads of a batch.
#include "pg-loader/batch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace corral::pg {
namespace {

using Kind = LoadOutcome::Kind;

std::string Encode(std::vector<std::string> ids) { return EncodeTextArray(ids); }

TEST(EncodeTextArrayTest, QuotesEveryElement) {
  EXPECT_EQ(Encode({}), "{}");
  EXPECT_EQ(Encode({"1"}), R"({"1"})");
  EXPECT_EQ(Encode({"1", "2", "30"}), R"({"1","2","30"})");
}

TEST(EncodeTextArrayTest, EscapesQuotesAndBackslashesOnly) {
  EXPECT_EQ(Encode({R"(a"b)"}), R"({"a\"b"})");
  EXPECT_EQ(Encode({R"(c\d)"}), R"({"c\\d"})");
  EXPECT_EQ(Encode({R"(\")"}), R"({"\\\""})");
  EXPECT_EQ(Encode({R"(x\\)"}), R"({"x\\\\"})");
}

TEST(EncodeTextArrayTest, SeparatorsBracesSpacesAndNullSurviveInsideQuotes) {
  EXPECT_EQ(Encode({"e,f", "{g}", " h ", "NULL", "null"}), R"({"e,f","{g}"," h ","NULL","null"})");
  EXPECT_EQ(Encode({"tab\there", "new\nline", "caf\xc3\xa9"}),
            "{\"tab\there\",\"new\nline\",\"caf\xc3\xa9\"}");
}

TEST(EncodeTextArrayTest, EmptyStringIsAnEmptyQuotedElement) {
  EXPECT_EQ(Encode({""}), R"({""})");
  EXPECT_EQ(Encode({"", "", "a"}), R"({"","","a"})");
}

std::vector<Job> Jobs(std::vector<std::string> ids) {
  std::vector<Job> jobs;
  for (std::string& id : ids) {
    Job job;
    job.id = std::move(id);
    jobs.push_back(std::move(job));
  }
  return jobs;
}

TEST(PlanBatchTest, DistinctIdsInFirstSeenOrder) {
  const std::vector<Job> jobs = Jobs({"7", "3", "7", "9", "3", "7"});
  const BatchPlan plan = PlanBatch(jobs);
  EXPECT_EQ(plan.ids, (std::vector<std::string>{"7", "3", "9"}));
  EXPECT_EQ(plan.slot, (std::vector<size_t>{0, 1, 0, 2, 1, 0}));
}

TEST(PlanBatchTest, EmptyAndDistinguishedIds) {
  // "" is an id like any other; ids differing in case or spaces are different ids.
  const std::vector<Job> jobs = Jobs({"", "a", "A", " a", ""});
  const BatchPlan plan = PlanBatch(jobs);
  EXPECT_EQ(plan.ids, (std::vector<std::string>{"", "a", "A", " a"}));
  EXPECT_EQ(plan.slot, (std::vector<size_t>{0, 1, 2, 3, 0}));
}

Column Text(std::string_view name, std::string_view text) {
  return Column{name, 25 /* text */, false, text};
}

TEST(BatchAnswersTest, RowsAnswerTheirIdsAndMissingIdsAreNotFound) {
  const std::vector<std::string> ids = {"1", "2", "3"};
  BatchAnswers answers(ids);
  const Column three[] = {Text("v", "third")};
  const Column one[] = {Text("v", "first")};
  answers.AddRow("3", three);  // any order
  answers.AddRow("1", one);
  const std::vector<KeyAnswer> result = answers.Take();
  ASSERT_EQ(result.size(), 3u);
  EXPECT_EQ(result[0].kind, Kind::kValue);
  EXPECT_EQ(result[0].data, "first");
  EXPECT_EQ(result[1].kind, Kind::kNotFound);
  EXPECT_EQ(result[1].data, "");
  EXPECT_EQ(result[2].kind, Kind::kValue);
  EXPECT_EQ(result[2].data, "third");
}

TEST(BatchAnswersTest, RowsForIdsNotAskedForAreIgnored) {
  const std::vector<std::string> ids = {"1"};
  BatchAnswers answers(ids);
  const Column value[] = {Text("v", "x")};
  answers.AddRow("01", value);  // what "1"::bigint does not print as
  answers.AddRow("2", value);
  answers.AddRow("", value);
  const std::vector<KeyAnswer> result = answers.Take();
  ASSERT_EQ(result.size(), 1u);
  EXPECT_EQ(result[0].kind, Kind::kNotFound);
}

TEST(BatchAnswersTest, ValueColumnsFollowTheSingleQueryRules) {
  const std::vector<std::string> ids = {"a", "b", "c"};
  BatchAnswers answers(ids);
  const Column several[] = {Column{"id", kInt8Oid, false, "5"}, Text("name", "five"),
                            Column{"ok", kBoolOid, false, "t"}, Column{"n", kInt4Oid, true, ""}};
  const Column null_single[] = {Column{"v", 25, true, ""}};
  const Column json_single[] = {Column{"v", kJsonOid, false, R"({"k": 1})"}};
  answers.AddRow("a", several);
  answers.AddRow("b", null_single);
  answers.AddRow("c", json_single);
  const std::vector<KeyAnswer> result = answers.Take();
  ASSERT_EQ(result.size(), 3u);
  EXPECT_EQ(result[0].kind, Kind::kValue);
  EXPECT_EQ(result[0].data, R"({"id":5,"name":"five","ok":true,"n":null})");
  EXPECT_EQ(result[1].kind, Kind::kNotFound);  // one NULL column, as for a single load
  EXPECT_EQ(result[2].kind, Kind::kValue);
  EXPECT_EQ(result[2].data, R"({"k": 1})");  // one column: its text as is
}

TEST(BatchAnswersTest, SeveralRowsForOneIdIsAnErrorForThatIdOnly) {
  const std::vector<std::string> ids = {"1", "2"};
  BatchAnswers answers(ids);
  const Column value[] = {Text("v", "x")};
  answers.AddRow("1", value);
  answers.AddRow("2", value);
  answers.AddRow("1", value);
  answers.AddRow("1", value);
  const std::vector<KeyAnswer> result = answers.Take();
  ASSERT_EQ(result.size(), 2u);
  EXPECT_EQ(result[0].kind, Kind::kError);
  EXPECT_EQ(result[0].data, "query returned 3 rows");
  EXPECT_EQ(result[1].kind, Kind::kValue);
  EXPECT_EQ(result[1].data, "x");
}

TEST(BatchAnswersTest, TheEmptyStringIsAnId) {
  const std::vector<std::string> ids = {"", "x"};
  BatchAnswers answers(ids);
  const Column value[] = {Text("v", "empty")};
  answers.AddRow("", value);
  const std::vector<KeyAnswer> result = answers.Take();
  EXPECT_EQ(result[0].kind, Kind::kValue);
  EXPECT_EQ(result[0].data, "empty");
  EXPECT_EQ(result[1].kind, Kind::kNotFound);
}

TEST(FanOutTest, EveryLoadGetsItsIdsAnswerIncludingDuplicates) {
  const std::vector<Job> jobs = Jobs({"1", "2", "1", "3", "1"});
  const BatchPlan plan = PlanBatch(jobs);
  const std::vector<KeyAnswer> answers = {
      {Kind::kValue, "one"}, {Kind::kNotFound, ""}, {Kind::kError, "bad"}};
  const std::vector<LoadOutcome> outcomes = FanOut(plan, answers, "replica1", 1234);
  ASSERT_EQ(outcomes.size(), 5u);
  const Kind kinds[] = {Kind::kValue, Kind::kNotFound, Kind::kValue, Kind::kError, Kind::kValue};
  const char* data[] = {"one", "", "one", "bad", "one"};
  for (size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes[i].kind, kinds[i]) << i;
    EXPECT_EQ(outcomes[i].data, data[i]) << i;
    EXPECT_EQ(outcomes[i].replica, "replica1") << i;
    EXPECT_EQ(outcomes[i].micros, 1234) << i;  // the batch query's time, for every load
  }
}

TEST(FanOutTest, AnErrorForAllReachesEveryLoad) {
  const std::vector<Job> jobs = Jobs({"1", "2", "2"});
  const BatchPlan plan = PlanBatch(jobs);
  const std::vector<KeyAnswer> answers = AnswerAll(plan.ids.size(), Kind::kError, "boom");
  ASSERT_EQ(answers.size(), 2u);
  for (const LoadOutcome& outcome : FanOut(plan, answers, "replica0", 5)) {
    EXPECT_EQ(outcome.kind, Kind::kError);
    EXPECT_EQ(outcome.data, "boom");
  }
}

TEST(FanOutTest, AMissingAnswerIsAnErrorNotACrash) {
  const std::vector<Job> jobs = Jobs({"1", "2"});
  const BatchPlan plan = PlanBatch(jobs);
  const std::vector<KeyAnswer> answers = {{Kind::kValue, "one"}};
  const std::vector<LoadOutcome> outcomes = FanOut(plan, answers, "replica0", 1);
  EXPECT_EQ(outcomes[0].kind, Kind::kValue);
  EXPECT_EQ(outcomes[1].kind, Kind::kError);
}

}  // namespace
}  // namespace corral::pg
