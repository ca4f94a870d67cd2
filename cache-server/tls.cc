// The TLS server context; see tls.h.
#include "cache-server/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include "cache-server/log.h"

namespace corral::server {

namespace ssl = boost::asio::ssl;

TlsContexts::TlsContexts(const TlsConfig& config) : config_(config) {
  stamps_ = Stamps();
  current_ = Build();
}

std::shared_ptr<ssl::context> TlsContexts::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::vector<TlsContexts::Stamp> TlsContexts::Stamps() const {
  std::vector<Stamp> stamps;
  for (const std::string* file : {&config_.cert_file, &config_.key_file, &config_.ca_file}) {
    struct stat st {};
    Stamp stamp;
    if (!file->empty() && ::stat(file->c_str(), &st) == 0) {
      stamp = Stamp{st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                    static_cast<long long>(st.st_size)};
    }
    stamps.push_back(stamp);
  }
  return stamps;
}

std::shared_ptr<ssl::context> TlsContexts::Build() const {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ssl::context::options options = ssl::context::default_workarounds | ssl::context::no_sslv2 |
                                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                                  ssl::context::no_tlsv1_1 | ssl::context::single_dh_use;
  if (config_.min_version == "1.3") options |= ssl::context::no_tlsv1_2;
  boost::system::error_code ec;
  ctx->set_options(options, ec);
  auto fail = [&](const char* field, const std::string& file) {
    throw ConfigError(std::string("tls.") + field, "cannot load \"" + file + "\": " + ec.message());
  };
  ctx->use_certificate_chain_file(config_.cert_file, ec);
  if (ec) fail("cert_file", config_.cert_file);
  ctx->use_private_key_file(config_.key_file, ssl::context::pem, ec);
  if (ec) fail("key_file", config_.key_file);
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ERR_clear_error();
    throw ConfigError(
        "tls.key_file",
        "\"" + config_.key_file + "\" is not the private key of tls.cert_file's certificate");
  }
  if (!config_.ca_file.empty()) {
    ctx->load_verify_file(config_.ca_file, ec);
    if (ec) fail("ca_file", config_.ca_file);
  }
  if (config_.auth_clients == "yes") {
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  } else if (config_.auth_clients == "optional") {
    ctx->set_verify_mode(ssl::verify_peer);
  } else {
    ctx->set_verify_mode(ssl::verify_none);
  }
  // Session resumption with client certificates needs a context id.
  static constexpr unsigned char kSessionContext[] = "corral";
  SSL_CTX_set_session_id_context(ctx->native_handle(), kSessionContext,
                                 sizeof(kSessionContext) - 1);
  return ctx;
}

void TlsContexts::Reload(bool force) {
  std::vector<Stamp> stamps = Stamps();
  {
    std::lock_guard lock(mu_);
    if (!force && stamps == stamps_) return;
    stamps_ = stamps;  // a file half-written now is retried when it changes again
  }
  try {
    std::shared_ptr<ssl::context> fresh = Build();
    std::lock_guard lock(mu_);
    current_ = std::move(fresh);
    Log(LogLevel::kInfo, "tls_reloaded", "cert_file=" + LogQuote(config_.cert_file));
  } catch (const ConfigError& e) {
    Log(LogLevel::kError, "tls_reload_failed",
        "error=" + LogQuote(e.what()) + " note=\"the previous certificate stays in use\"");
  }
}

}  // namespace corral::server
