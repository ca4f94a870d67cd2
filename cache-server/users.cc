// Builds corral's users from the configuration; see users.h.
#include "cache-server/users.h"

#include <algorithm>
#include <vector>

#include "cache-server/resp_commands.h"

namespace corral::server {

const char kProtectedModeMessage[] =
    "DENIED corral is running in protected mode because protected mode is enabled and no "
    "password is set for the default user. In this mode connections are only accepted from the "
    "loopback interface. If you want to connect from external computers to corral you may adopt "
    "one of the following solutions: 1) Set a password for the default user (resp.requirepass) "
    "or configure users with credentials (\"users\" in the config file) and restart corral. "
    "2) Disable protected mode (\"protected_mode\": false) if the network itself is protected "
    "and restart corral. 3) Listen on the loopback interface only (listen.resp and "
    "listen.http). NOTE: you only need to do one of the above things in order for the server to "
    "start accepting connections from the outside.";

auth::Catalogue CommandCatalogue() {
  static const std::vector<auth::CommandInfo> catalogue = [] {
    std::vector<auth::CommandInfo> out;
    for (const CommandSpec& spec : RespCommands::Table()) {
      if (const RespCommands::ContainerAcl* c = RespCommands::ContainerAclOf(spec.name)) {
        out.push_back({spec.name, c->categories, c->subcommands});
      } else {
        out.push_back({spec.name, spec.acl_categories()});
      }
    }
    return out;
  }();
  return catalogue;
}

std::unique_ptr<auth::UserTable> BuildUsers(const Config& config) {
  auto table = std::make_unique<auth::UserTable>(CommandCatalogue());
  auto apply = [&](auth::User& user, const std::string& path, std::string_view rules) {
    if (auto error = auth::ApplyRuleString(user, rules, CommandCatalogue())) {
      throw ConfigError(path, error->Message());
    }
  };
  auto add_secrets = [](auth::User& user, const UserConfig& from) {
    for (const std::string& p : from.passwords) {
      auth::Digest d = auth::Sha256(p);
      if (std::find(user.passwords.begin(), user.passwords.end(), d) == user.passwords.end()) {
        user.passwords.push_back(d);
      }
      user.nopass = false;
    }
    for (const std::string& t : from.tokens) user.tokens.push_back(auth::Sha256(t));
  };

  // `default` as Redis creates it; requirepass is its password (Redis: "resetpass >pw").
  auth::User default_user = auth::DefaultUser(CommandCatalogue());
  bool any_credential = !config.resp_options.requirepass.empty();
  if (!config.resp_options.requirepass.empty()) {
    default_user.nopass = false;
    default_user.passwords = {auth::Sha256(config.resp_options.requirepass)};
  }
  std::vector<auth::User> users;
  for (const auto& [name, user_config] : config.users) {
    const std::string path = "users." + name;
    auth::User user;
    if (name == "default") {
      user = default_user;
    } else {
      user.name = name;
      apply(user, path + ".acl", "reset");
    }
    apply(user, path + ".acl", user_config.acl);
    add_secrets(user, user_config);
    any_credential = any_credential || !user.passwords.empty() || !user.tokens.empty();
    if (name == "default") {
      default_user = std::move(user);
    } else {
      users.push_back(std::move(user));
    }
  }
  // Two users with one token: the token could not say who is calling.
  for (size_t i = 0; i < users.size(); ++i) {
    for (size_t j = 0; j <= users.size(); ++j) {
      const auth::User& other = j < users.size() ? users[j] : default_user;
      if (j == i) continue;
      for (const auth::Digest& t : users[i].tokens) {
        if (std::find(other.tokens.begin(), other.tokens.end(), t) != other.tokens.end()) {
          throw ConfigError("users." + users[i].name + ".tokens",
                            "a token is also user " + other.name + "'s; each token names one user");
        }
      }
    }
  }
  if (any_credential && default_user.enabled && default_user.nopass) {
    if (config.users.contains("default")) {
      throw ConfigError("users.default.acl",
                        "the default user is on and nopass while other credentials are "
                        "configured, which leaves every door open: give it a password, or \"off\"");
    }
    default_user.enabled = false;  // no door stays open by accident
  }
  table->Put(std::move(default_user));
  for (auth::User& user : users) table->Put(std::move(user));
  return table;
}

bool IsLoopback(const boost::asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6())
        .is_loopback();
  }
  return address.is_loopback();
}

bool ProtectedModeRefuses(const Config& config, const auth::UserTable& users, bool peer_loopback) {
  return config.protected_mode && !peer_loopback && users.DefaultIsOpen();
}

}  // namespace corral::server
