// TLS on the RESP and HTTP ports (SPEC.md "Security"): redis-cli --tls and curl https against
// the real binary, client certificates, garbage and half-open handshakes (no descriptor leaks),
// the minimum version, and certificates reloaded on SIGHUP and when the files change. The
// certificates are made for each run with the openssl command.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/integration/certificates.h"
#include "tests/integration/server_process.h"

namespace corral::integration {
namespace {

using ::testing::HasSubstr;

std::string TlsConfig(const Certificates& certs, const std::string& extra_tls = "") {
  return R"({"listen": {"resp_tls": "127.0.0.1:0", "http_tls": "127.0.0.1:0"},
             "tls": {"cert_file": ")" +
         certs["server.crt"] + R"(", "key_file": ")" + certs["server.key"] + R"(", "ca_file": ")" +
         certs["ca1.crt"] + "\"" + extra_tls + "}}";
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"openssl", "redis-cli", "curl"}) {
      ASSERT_TRUE(InPath(tool)) << tool << " is not in PATH: run deploy/install-deps.sh";
    }
    ASSERT_TRUE(certs_.ok()) << certs_.error();
  }
  void StartServer(const std::string& extra_tls = "") {
    std::string error;
    server_ = ServerProcess::Start(
        ServerOptions{.config_json = TlsConfig(certs_, extra_tls), .extra_args = {}}, &error);
    ASSERT_NE(server_, nullptr) << error;
    ASSERT_NE(server_->resp_tls_port(), 0);
    ASSERT_NE(server_->http_tls_port(), 0);
  }
  ProcessResult RedisCliTls(std::vector<std::string> args, const std::string& ca = "ca1.crt") {
    std::vector<std::string> argv = {"redis-cli", "--tls",
                                     "--cacert",  certs_[ca],
                                     "-p",        std::to_string(server_->resp_tls_port())};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {}, Millis(10000));
  }
  ProcessResult Curl(const std::string& path, std::vector<std::string> args = {},
                     const std::string& ca = "ca1.crt") {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "5", "--cacert", certs_[ca]};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("https://127.0.0.1:" + std::to_string(server_->http_tls_port()) + path);
    return RunProcess(argv, {}, Millis(10000));
  }

  Certificates certs_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(TlsTest, RedisCliAndCurlSpeakTlsAndThePlainPortsStayPlain) {
  StartServer();
  ProcessResult set = RedisCliTls({"SET", "plain:k", "over-tls"});
  EXPECT_EQ(set.out, "OK\n") << set.err;
  ProcessResult get = RedisCliTls({"GET", "plain:k"});
  EXPECT_EQ(get.out, "over-tls\n") << get.err;
  // A pipeline larger than one TLS record, through redis-cli's pipe mode.
  std::string many;
  for (int i = 0; i < 2000; ++i)
    many += "SET plain:p" + std::to_string(i) + " value-" + std::to_string(i) + "\n";
  ProcessResult pipe = RunProcess({"redis-cli", "--tls", "--cacert", certs_["ca1.crt"], "-p",
                                   std::to_string(server_->resp_tls_port())},
                                  many, Millis(20000));
  EXPECT_EQ(std::count(pipe.out.begin(), pipe.out.end(), '\n'), 2000) << pipe.err;

  ProcessResult https = Curl("/v1/cache/plain/k");
  EXPECT_EQ(https.out, "over-tls") << https.err;
  ProcessResult put = Curl("/v1/cache/plain/h", {"-X", "PUT", "--data-binary", "via-https", "-o",
                                                 "/dev/null", "-w", "%{http_code}"});
  EXPECT_EQ(put.out, "204") << put.err;
  EXPECT_EQ(RedisCliTls({"GET", "plain:h"}).out, "via-https\n");
  EXPECT_EQ(Curl("/healthz").out, "ok\n");

  // The plain ports are unchanged, and plain text on a TLS port gets no answer.
  RedisConnection plain = ConnectRedis(server_->resp_port());
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(ReplyText(RedisCmd(plain.get(), {"GET", "plain:k"}).get()), "$over-tls");
  ProcessResult wrong = RunProcess(
      {"redis-cli", "-p", std::to_string(server_->resp_tls_port()), "PING"}, {}, Millis(10000));
  EXPECT_THAT(wrong.out, ::testing::Not(HasSubstr("PONG")));
  // A certificate from another CA is refused by the client: corral serves its own.
  EXPECT_NE(RedisCliTls({"PING"}, "ca2.crt").out, "PONG\n");
}

int OpenDescriptors(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

TEST_F(TlsTest, GarbageAndHalfOpenHandshakesAreClosedWithoutLeakingDescriptors) {
  StartServer(R"(, "handshake_timeout_ms": 300)");
  ASSERT_EQ(RedisCliTls({"PING"}).out, "PONG\n");
  ASSERT_EQ(Curl("/healthz").out, "ok\n");
  const int baseline = OpenDescriptors(server_->pid());
  ASSERT_GT(baseline, 0);
  std::vector<std::unique_ptr<TcpClient>> clients;
  for (uint16_t port : {server_->resp_tls_port(), server_->http_tls_port()}) {
    for (int i = 0; i < 10; ++i) {
      // Garbage instead of a ClientHello, plain RESP, a truncated ClientHello, and silence.
      for (std::string_view bytes :
           {std::string_view("\x16\x03\x01\x00\x05garbage-garbage", 20),
            std::string_view("PING\r\n"),
            std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 9), std::string_view()}) {
        auto c = TcpClient::Connect(port);
        ASSERT_NE(c, nullptr);
        if (!bytes.empty()) {
          ASSERT_TRUE(c->Send(bytes));
        }
        clients.push_back(std::move(c));
      }
    }
  }
  // Each is closed by corral: at once for garbage, at the handshake timeout for the rest.
  for (auto& c : clients) EXPECT_TRUE(c->WaitForClose(Millis(5000)));
  clients.clear();
  EXPECT_TRUE(WaitFor([&] { return OpenDescriptors(server_->pid()) <= baseline; }, Millis(5000)))
      << OpenDescriptors(server_->pid()) << " descriptors open, " << baseline << " before";
  EXPECT_EQ(RedisCliTls({"PING"}).out, "PONG\n");
  EXPECT_EQ(Curl("/healthz").out, "ok\n");
}

TEST_F(TlsTest, ClientCertificatesAreRequiredWhenAsked) {
  StartServer(R"(, "auth_clients": "yes")");
  ProcessResult without = Curl("/healthz");
  EXPECT_FALSE(without.status.ok()) << without.out;
  ProcessResult with =
      Curl("/healthz", {"--cert", certs_["client.crt"], "--key", certs_["client.key"]});
  EXPECT_EQ(with.out, "ok\n") << with.err;
  EXPECT_NE(RedisCliTls({"PING"}).out, "PONG\n");
  ProcessResult cli =
      RedisCliTls({"--cert", certs_["client.crt"], "--key", certs_["client.key"], "PING"});
  EXPECT_EQ(cli.out, "PONG\n") << cli.err;
  // A client certificate from a CA corral does not trust is refused.
  ProcessResult foreign =
      Curl("/healthz", {"--cert", certs_["server2.crt"], "--key", certs_["server2.key"]});
  EXPECT_FALSE(foreign.status.ok()) << foreign.out;
}

TEST_F(TlsTest, TheMinimumVersionHolds) {
  StartServer(R"(, "min_version": "1.3")");
  ProcessResult old_client = Curl("/healthz", {"--tlsv1.2", "--tls-max", "1.2"});
  EXPECT_FALSE(old_client.status.ok()) << old_client.out;
  EXPECT_EQ(Curl("/healthz", {"--tlsv1.3"}).out, "ok\n");
}

TEST_F(TlsTest, CertificatesReloadOnSighupAndWhenTheFilesChange) {
  StartServer();
  ASSERT_EQ(Curl("/healthz").out, "ok\n");
  // SIGHUP: the next connection gets server2's certificate, which only ca2 verifies.
  certs_.Serve(2);
  server_->Signal(SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return Curl("/healthz", {}, "ca2.crt").out == "ok\n"; }, Millis(10000),
                      Millis(100)));
  EXPECT_NE(Curl("/healthz").out, "ok\n");
  EXPECT_EQ(RedisCliTls({"PING"}, "ca2.crt").out, "PONG\n");
  // No signal: the files changing is enough.
  certs_.Serve(1);
  EXPECT_TRUE(WaitFor([&] { return Curl("/healthz").out == "ok\n"; }, Millis(10000), Millis(100)));
  // A broken file is logged and the current certificate kept.
  { std::ofstream(certs_["server.crt"]) << "not a certificate\n"; }
  server_->Signal(SIGHUP);
  EXPECT_TRUE(server_->WaitForStderr("event=tls_reload_failed", Millis(5000)));
  EXPECT_EQ(Curl("/healthz").out, "ok\n");
  EXPECT_TRUE(server_->Running());
}

TEST(TlsConfigTest, ACertificateThatCannotBeUsedIsAConfigErrorNamingTheField) {
  Certificates certs;
  ASSERT_TRUE(certs.ok()) << certs.error();
  struct Case {
    std::string config, field;
  };
  const std::string listen = R"("listen": {"resp_tls": "127.0.0.1:0"}, )";
  for (const Case& c : std::vector<Case>{
           {"{" + listen + R"("tls": {"cert_file": "/nonexistent.crt", "key_file": ")" +
                certs["server.key"] + "\"}}",
            "tls.cert_file"},
           {"{" + listen + R"("tls": {"cert_file": ")" + certs["server1.crt"] +
                R"(", "key_file": ")" + certs["server2.key"] + "\"}}",
            "tls.key_file"},
           {"{" + listen + "\"threads\": 1}", "tls"},
           {"{" + listen + R"("tls": {"cert_file": ")" + certs["server1.crt"] +
                R"(", "key_file": ")" + certs["server1.key"] + R"(", "auth_clients": "yes"}})",
            "tls.ca_file"},
       }) {
    const std::string file = certs["config.json"];
    { std::ofstream(file) << c.config; }
    ProcessResult r = RunProcess({ServerBinary(), "--check-config", file});
    EXPECT_FALSE(r.status.ok()) << c.config;
    EXPECT_THAT(r.err, HasSubstr("config error: " + c.field + ": ")) << c.config;
  }
}

}  // namespace
}  // namespace corral::integration
