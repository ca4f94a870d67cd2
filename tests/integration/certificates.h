// Certificates made for a test run with the openssl command: two CAs, a server certificate from
// each (for 127.0.0.1 and localhost) and a client certificate from the first (tls_test,
// clients_test).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/integration/server_process.h"

namespace corral::integration {

// A directory of certificates: ca{1,2}.crt, server{1,2}.{crt,key} signed by ca{1,2} for
// 127.0.0.1 and localhost, client.{crt,key} signed by ca1; server.{crt,key} is what corral serves
// (a copy of server1 to begin with).
class Certificates {
 public:
  Certificates() {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("corral-tls-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    const std::string script = R"(set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
for n in 1 2; do
  key ca$n.key
  openssl req -x509 -new -key ca$n.key -out ca$n.crt -days 2 -subj "/CN=corral test CA $n"
  key server$n.key
  openssl req -new -key server$n.key -out server$n.csr -subj "/CN=localhost"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
  openssl x509 -req -in server$n.csr -CA ca$n.crt -CAkey ca$n.key -CAcreateserial \
    -out server$n.crt -days 2 -extfile server.ext 2>/dev/null
done
key client.key
openssl req -new -key client.key -out client.csr -subj "/CN=corral test client"
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca1.crt -CAkey ca1.key -CAcreateserial -out client.crt \
  -days 2 -extfile client.ext 2>/dev/null
cp server1.crt server.crt
cp server1.key server.key
)";
    ProcessResult r = RunProcess({"sh", "-c", "cd '" + dir_.string() + "' && " + script});
    ok_ = r.status.ok();
    error_ = r.err;
  }
  ~Certificates() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string operator[](const std::string& name) const { return (dir_ / name).string(); }
  // Serves server{n} from now on (the files change in place).
  void Serve(int n) {
    std::filesystem::copy_file((*this)["server" + std::to_string(n) + ".key"],
                               (*this)["server.key"],
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file((*this)["server" + std::to_string(n) + ".crt"],
                               (*this)["server.crt"],
                               std::filesystem::copy_options::overwrite_existing);
  }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  bool ok_ = false;
  std::string error_;
};

}  // namespace corral::integration
