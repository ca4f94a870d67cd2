// Base fixtures for suites that share one corral-server (default options, no PostgreSQL): started
// before the suite's first test, stopped after its last, and its exit status checked.
#pragma once

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/integration/server_process.h"

namespace corral::integration {

class SharedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { StartShared(ServerOptions{}); }
  // A suite that needs other options declares its own SetUpTestSuite calling this.
  static void StartShared(const ServerOptions& options) {
    std::string error;
    server_ = ServerProcess::Start(options, &error).release();
    ASSERT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    if (server_ == nullptr) return;
    ExitStatus status = server_->Stop();
    EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << server_->Stderr();
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  // One suite runs at a time, so one pointer serves every suite of a binary.
  static inline ServerProcess* server_ = nullptr;
};

// The same, with one hiredis connection per test, opened on a server emptied by FLUSHALL.
class SharedClientTest : public SharedServerTest {
 protected:
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    std::string error;
    conn_ = ConnectRedis(server_->resp_port(), Millis(5000), &error);
    ASSERT_NE(conn_, nullptr) << error;
    ASSERT_EQ(Cmd({"FLUSHALL"}), "+OK");
  }

  // Runs one command on this test's connection and renders the reply (see ReplyText).
  std::string Cmd(const std::vector<std::string>& args) {
    return ReplyText(RedisCmd(conn_.get(), args).get());
  }
  int64_t Int(const std::vector<std::string>& args) {
    RedisReplyPtr r = RedisCmd(conn_.get(), args);
    EXPECT_TRUE(r != nullptr && r->type == REDIS_REPLY_INTEGER) << ReplyText(r.get());
    return r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : INT64_MIN;
  }

  RedisConnection conn_;
};

}  // namespace corral::integration
