// The mainstream Redis client libraries, unmodified, against corral: redis-py (Debian's
// python3-redis), node-redis and ioredis (npm, pinned by tests/clients/node/package-lock.json).
// This starts one corral with ACL users and a TLS port and runs each library's suite in
// tests/clients/ against it; the suites assert, this checks that they ran and passed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/integration/certificates.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;

class ClientsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new Certificates();
    ASSERT_TRUE(certs_->ok()) << certs_->error();
    const std::string config = R"({
      "listen": {"resp_tls": "127.0.0.1:0"},
      "tls": {"cert_file": ")" +
                               (*certs_)["server.crt"] + R"(", "key_file": ")" +
                               (*certs_)["server.key"] + R"("},
      "resp": {"requirepass": "admin-pw"},
      "users": {"app": {"acl": "on ~plain:* %R~ro:* +@all -@dangerous", "password": "app-pw"}}
    })";
    std::string error;
    server_ = ServerProcess::Start(ServerOptions{.config_json = config, .extra_args = {}}, &error)
                  .release();
    ASSERT_NE(server_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete certs_;
  }

  // Runs `argv` from the repository with the server's ports and CA in the environment.
  ProcessResult RunSuite(const std::vector<std::string>& argv) {
    std::vector<std::string> with_env = {
        "env",
        "CORRAL_RESP_PORT=" + std::to_string(server_->resp_port()),
        "CORRAL_RESP_TLS_PORT=" + std::to_string(server_->resp_tls_port()),
        "CORRAL_TLS_CA=" + (*certs_)["ca1.crt"],
    };
    with_env.insert(with_env.end(), argv.begin(), argv.end());
    return RunProcess(with_env, {}, Millis(120000));
  }

  static Certificates* certs_;
  static ServerProcess* server_;
};
Certificates* ClientsTest::certs_ = nullptr;
ServerProcess* ClientsTest::server_ = nullptr;

const std::string kClients = std::string(CORRAL_SOURCE_DIR) + "/tests/clients";

TEST_F(ClientsTest, RedisPy) {
  ProcessResult check = RunProcess({"/usr/bin/python3", "-c", "import redis"});
  ASSERT_TRUE(check.status.ok())
      << "redis-py is missing: run deploy/install-deps.sh (python3-redis)\n"
      << check.err;
  ProcessResult r = RunSuite({"/usr/bin/python3", kClients + "/python/test_redis_py.py"});
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << "\n" << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("Ran 4 tests")) << r.err;
  EXPECT_THAT(r.err, HasSubstr("\nOK")) << r.err;
}

TEST_F(ClientsTest, NodeRedisAndIoredis) {
  ASSERT_TRUE(InPath("node")) << "node is not in PATH";
  ASSERT_TRUE(std::filesystem::exists(kClients + "/node/node_modules/redis") &&
              std::filesystem::exists(kClients + "/node/node_modules/ioredis"))
      << "the Node clients are not installed: (cd tests/clients/node && npm ci), as "
         "deploy/run-tests.sh does";
  ProcessResult r = RunSuite({"node", "--test", kClients + "/node/clients.test.mjs"});
  EXPECT_TRUE(r.status.ok()) << r.status.ToString() << "\n" << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("# pass 5")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("# fail 0")) << r.out;
}

}  // namespace
}  // namespace corral::integration
