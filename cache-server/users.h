// The users of both doors, built from the configuration: `default` (with resp.requirepass as its
// password) and users.NAME, resolved against the RESP command table (auth/acl.h).
#pragma once

#include <boost/asio/ip/address.hpp>
#include <memory>

#include "auth/acl.h"
#include "cache-server/config.h"

namespace corral::server {

// corral's commands as the ACL sees them (names and categories), in RespCommands::Table()'s order.
auth::Catalogue CommandCatalogue();

// Builds the user table. Throws ConfigError naming the field (users.NAME.acl and its rule, or the
// default user left open while other credentials exist). When any credential is configured and
// users.default is not, `default` is turned off, so that no door stays open by accident.
// --check-config and start-up both call it.
std::unique_ptr<auth::UserTable> BuildUsers(const Config& config);

// True when a client at `peer_loopback` must be refused by protected mode: it is on, nothing
// asks for a credential (default is open) and the client is not on loopback.
bool ProtectedModeRefuses(const Config& config, const auth::UserTable& users, bool peer_loopback);

// 127.0.0.0/8, ::1, or an IPv4-mapped loopback address (::ffff:127.0.0.1).
bool IsLoopback(const boost::asio::ip::address& address);

// The refusal, as Redis's protected-mode message, saying how to fix it.
extern const char kProtectedModeMessage[];

}  // namespace corral::server
