// A base fixture for suites that share one corral-server (default options, no PostgreSQL): started
// before the suite's first test, stopped after its last, and its exit status checked.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "tests/integration/server_process.h"

namespace corral::integration {

class SharedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    server_ = ServerProcess::Start(ServerOptions{}, &error).release();
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

}  // namespace corral::integration
