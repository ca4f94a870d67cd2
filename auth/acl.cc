// Redis 7.0's ACL rules and checks (src/acl.c's ACLSetUser, ACLCheckAllPerm), over corral's
// command catalogue; see acl.h.
#include "auth/acl.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "proto/glob.h"

namespace corral::auth {

namespace {

constexpr CategoryName kCategories[] = {
    {"keyspace", kKeyspace},
    {"read", kRead},
    {"write", kWrite},
    {"string", kString},
    {"fast", kFast},
    {"slow", kSlow},
    {"admin", kAdmin},
    {"dangerous", kDangerous},
    {"connection", kConnection},
    {"scripting", kScripting},
    {"transaction", kTransaction},
    {"pubsub", kPubSub},
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && Lower(a) == Lower(b);
}

std::optional<Digest> ParseHexDigest(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Digest d{};
  for (size_t i = 0; i < 64; ++i) {
    char c = hex[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return std::nullopt;
    d[i / 2] = static_cast<uint8_t>(d[i / 2] << 4 | v);
  }
  return d;
}

std::optional<size_t> FindCommand(Catalogue catalogue, std::string_view name) {
  for (size_t i = 0; i < catalogue.size(); ++i) {
    if (EqualsIgnoreCase(catalogue[i].name, name)) return i;
  }
  return std::nullopt;
}

// Redis 7.0's reasons (ACLSetUserStringError).
constexpr char kSyntax[] = "Syntax error";
constexpr char kUnknownCommand[] = "Unknown command or category name in ACL";
constexpr char kBadHash[] =
    "The password hash must be exactly 64 characters and contain only lowercase hexadecimal "
    "characters";
constexpr char kNoSuchPassword[] =
    "The password you are trying to remove from the user does not exist";
constexpr char kPatternAfterAll[] =
    "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have "
    "any effect. Try 'resetkeys' to start with an empty list of patterns";
constexpr char kChannelAfterAll[] =
    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not "
    "have any effect. Try 'resetchannels' to start with an empty list of channels";

// Allows or denies command `i` whole: its subcommand rules go, as in Redis.
void SetCommand(User& user, Catalogue catalogue, size_t i, bool allow) {
  user.allowed[i] = allow;
  const std::string prefix = std::string(catalogue[i].name) + "|";
  for (auto it = user.subcommands.lower_bound(prefix);
       it != user.subcommands.end() && it->first.starts_with(prefix);) {
    it = user.subcommands.erase(it);
  }
}

// A category rule (`category` ~0u: @all, which takes every command whole).
void SetCommands(User& user, Catalogue catalogue, uint32_t category, bool allow) {
  for (size_t i = 0; i < catalogue.size(); ++i) {
    const CommandInfo& command = catalogue[i];
    if (category == ~0u || (command.subcommands.empty() && (command.categories & category))) {
      SetCommand(user, catalogue, i, allow);
      continue;
    }
    if (command.categories & category) user.allowed[i] = allow;
    for (const SubcommandInfo& sub : command.subcommands) {
      if (sub.categories & category) {
        user.subcommands[std::string(command.name) + "|" + std::string(sub.name)] = allow;
      }
    }
  }
}

// The digest a password rule names: `>pw` / `<pw` hash the text, `#hex` / `!hex` give it.
std::optional<Digest> RuleDigest(std::string_view rule) {
  if (rule[0] == '>' || rule[0] == '<') return Sha256(rule.substr(1));
  return ParseHexDigest(rule.substr(1));
}

std::optional<std::string> ApplyOne(User& u, std::string_view rule, Catalogue catalogue) {
  if (EqualsIgnoreCase(rule, "on")) {
    u.enabled = true;
  } else if (EqualsIgnoreCase(rule, "off")) {
    u.enabled = false;
  } else if (EqualsIgnoreCase(rule, "nopass")) {
    u.nopass = true;
    u.passwords.clear();
  } else if (EqualsIgnoreCase(rule, "resetpass")) {
    u.nopass = false;
    u.passwords.clear();
  } else if (rule.starts_with('>') || rule.starts_with('#')) {
    std::optional<Digest> d = RuleDigest(rule);
    if (!d) return kBadHash;
    if (std::find(u.passwords.begin(), u.passwords.end(), *d) == u.passwords.end()) {
      u.passwords.push_back(*d);
    }
    u.nopass = false;
  } else if (rule.starts_with('<') || rule.starts_with('!')) {
    std::optional<Digest> d = RuleDigest(rule);
    if (!d) return kBadHash;
    auto it = std::find(u.passwords.begin(), u.passwords.end(), *d);
    if (it == u.passwords.end()) return kNoSuchPassword;
    u.passwords.erase(it);
  } else if (rule.starts_with('~') || rule.starts_with('%')) {
    KeyPattern p;
    std::string_view glob;
    if (rule[0] == '~') {
      glob = rule.substr(1);
    } else {
      size_t tilde = rule.find('~');
      if (tilde == std::string_view::npos || tilde == 1) return kSyntax;
      p.read = p.write = false;
      for (char c : rule.substr(1, tilde - 1)) {
        if (c == 'R' || c == 'r') {
          p.read = true;
        } else if (c == 'W' || c == 'w') {
          p.write = true;
        } else {
          return kSyntax;
        }
      }
      glob = rule.substr(tilde + 1);
    }
    if (u.all_keys) return kPatternAfterAll;
    if (glob == "*" && p.read && p.write) {
      u.all_keys = true;
      u.keys.clear();
    } else {
      p.glob = std::string(glob);
      u.keys.push_back(std::move(p));
    }
  } else if (EqualsIgnoreCase(rule, "allkeys")) {
    u.all_keys = true;
    u.keys.clear();
  } else if (EqualsIgnoreCase(rule, "resetkeys")) {
    u.all_keys = false;
    u.keys.clear();
  } else if (rule.starts_with('&')) {
    if (u.all_channels) return kChannelAfterAll;
    if (rule == "&*") {
      u.all_channels = true;
      u.channels.clear();
    } else {
      u.channels.emplace_back(rule.substr(1));
    }
  } else if (EqualsIgnoreCase(rule, "allchannels")) {
    u.all_channels = true;
    u.channels.clear();
  } else if (EqualsIgnoreCase(rule, "resetchannels")) {
    u.all_channels = false;
    u.channels.clear();
  } else if (EqualsIgnoreCase(rule, "allcommands") || EqualsIgnoreCase(rule, "+@all")) {
    SetCommands(u, catalogue, ~0u, true);
    u.command_rules = {"+@all"};
  } else if (EqualsIgnoreCase(rule, "nocommands") || EqualsIgnoreCase(rule, "-@all")) {
    SetCommands(u, catalogue, ~0u, false);
    u.command_rules.clear();
  } else if (rule.size() > 2 && (rule[0] == '+' || rule[0] == '-') && rule[1] == '@') {
    uint32_t category = FindCategory(rule.substr(2));
    if (category == 0) return kUnknownCommand;
    SetCommands(u, catalogue, category, rule[0] == '+');
    u.command_rules.push_back(Lower(rule));
  } else if (rule.size() > 1 && (rule[0] == '+' || rule[0] == '-')) {
    std::string_view name = rule.substr(1);
    std::string_view sub;
    if (size_t bar = name.find('|'); bar != std::string_view::npos) {
      sub = name.substr(bar + 1);
      name = name.substr(0, bar);
      if (sub.empty() || sub.find('|') != std::string_view::npos) return kSyntax;
    }
    std::optional<size_t> index = FindCommand(catalogue, name);
    if (!index) return kUnknownCommand;
    if (sub.empty()) {
      SetCommand(u, catalogue, *index, rule[0] == '+');
    } else {
      u.subcommands[std::string(catalogue[*index].name) + "|" + Lower(sub)] = rule[0] == '+';
    }
    u.command_rules.push_back(Lower(rule));
  } else if (EqualsIgnoreCase(rule, "reset")) {
    for (std::string_view r : {"resetpass", "resetkeys", "resetchannels", "off", "-@all"}) {
      ApplyOne(u, r, catalogue);
    }
  } else {
    return kSyntax;
  }
  return std::nullopt;
}

}  // namespace

std::span<const CategoryName> Categories() { return kCategories; }

uint32_t FindCategory(std::string_view name) {
  if (EqualsIgnoreCase(name, "all")) return ~0u;
  for (const CategoryName& c : kCategories) {
    if (EqualsIgnoreCase(c.name, name)) return c.bit;
  }
  return 0;
}

Digest Sha256(std::string_view text) {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d.data());
  return d;
}

std::string HexDigest(const Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

bool DigestsEqual(const Digest& a, const Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void User::Seal() {
  unrestricted = all_keys && all_channels && subcommands.empty() &&
                 std::all_of(allowed.begin(), allowed.end(), [](bool b) { return b; });
}

bool User::MayRun(size_t command, std::string_view name, std::string_view subcommand) const {
  if (!subcommands.empty() && !subcommand.empty()) {
    auto it = subcommands.find(std::string(name) + "|" + Lower(subcommand));
    if (it != subcommands.end()) return it->second;
  }
  return command < allowed.size() && allowed[command];
}

bool User::MayAccess(std::string_view key, Access access) const {
  if (all_keys) return true;
  for (const KeyPattern& p : keys) {
    if ((access == Access::kRead ? p.read : p.write) && proto::GlobMatch(p.glob, key)) {
      return true;
    }
  }
  return false;
}

bool User::MayUseChannel(std::string_view channel, bool is_pattern) const {
  if (all_channels) return true;
  for (const std::string& glob : channels) {
    if (is_pattern ? glob == channel : proto::GlobMatch(glob, channel)) return true;
  }
  return false;
}

bool User::CheckPassword(std::string_view password) const {
  if (nopass) return true;
  const Digest d = Sha256(password);
  bool match = false;
  for (const Digest& p : passwords) match |= DigestsEqual(p, d);
  return match;
}

std::string User::Describe() const {
  std::string out = "user " + name + (enabled ? " on" : " off");
  if (nopass) out += " nopass";
  for (const Digest& p : passwords) out += " #" + HexDigest(p);
  if (all_keys) out += " ~*";
  for (const KeyPattern& p : keys) {
    if (p.read && p.write) {
      out += " ~" + p.glob;
    } else {
      out += std::string(" %") + (p.read ? "R" : "") + (p.write ? "W" : "") + "~" + p.glob;
    }
  }
  if (all_channels) {
    out += " &*";
  } else if (channels.empty()) {
    out += " resetchannels";
  }
  for (const std::string& c : channels) out += " &" + c;
  if (command_rules.empty()) out += " -@all";
  for (const std::string& r : command_rules) out += " " + r;
  return out;
}

std::string RuleError::Message() const {
  return "Error in ACL SETUSER modifier '" + rule + "': " + problem;
}

std::optional<RuleError> ApplyRules(User& user, std::span<const std::string_view> rules,
                                    Catalogue catalogue) {
  User copy = user;
  copy.allowed.resize(catalogue.size(), false);
  for (std::string_view rule : rules) {
    if (rule.empty()) continue;
    if (std::optional<std::string> problem = ApplyOne(copy, rule, catalogue)) {
      return RuleError{std::string(rule), *problem};
    }
  }
  copy.Seal();
  user = std::move(copy);
  return std::nullopt;
}

std::optional<RuleError> ApplyRuleString(User& user, std::string_view rules, Catalogue catalogue) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < rules.size()) {
    while (i < rules.size() && rules[i] == ' ') ++i;
    size_t start = i;
    while (i < rules.size() && rules[i] != ' ') ++i;
    if (i > start) words.push_back(rules.substr(start, i - start));
  }
  return ApplyRules(user, words, catalogue);
}

User DefaultUser(Catalogue catalogue) {
  User user;
  user.name = "default";
  ApplyRuleString(user, "on nopass ~* &* +@all", catalogue);
  return user;
}

UserTable::UserTable(Catalogue catalogue) : catalogue_(catalogue) {}

void UserTable::Put(User user) {
  user.allowed.resize(catalogue_.size(), false);
  user.Seal();
  auto shared = std::make_shared<const User>(std::move(user));
  std::unique_lock lock(mu_);
  users_[shared->name] = std::move(shared);
  Changed();
}

bool UserTable::Remove(std::string_view name) {
  std::unique_lock lock(mu_);
  auto it = users_.find(name);
  if (it == users_.end()) return false;
  users_.erase(it);
  Changed();
  return true;
}

std::shared_ptr<const User> UserTable::Find(std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = users_.find(name);
  return it == users_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const User>> UserTable::All() const {
  std::shared_lock lock(mu_);
  std::vector<std::shared_ptr<const User>> all;
  for (const auto& [name, user] : users_) all.push_back(user);
  return all;
}

std::shared_ptr<const User> UserTable::Authenticate(std::string_view name,
                                                    std::string_view password) const {
  std::shared_ptr<const User> user = Find(name);
  // Hash even for an unknown user, so that the reply time does not say whether it exists.
  if (user == nullptr) {
    (void)Sha256(password);
    return nullptr;
  }
  if (!user->enabled || !user->CheckPassword(password)) return nullptr;
  return user;
}

std::shared_ptr<const User> UserTable::AuthenticateToken(std::string_view token) const {
  const Digest d = Sha256(token);
  std::shared_lock lock(mu_);
  std::shared_ptr<const User> found;
  for (const auto& [name, user] : users_) {
    for (const Digest& t : user->tokens) {
      if (DigestsEqual(t, d) && user->enabled) found = user;
    }
  }
  return found;
}

void UserTable::Changed() {
  auto it = users_.find("default");
  const bool open = it != users_.end() && it->second->enabled && it->second->nopass;
  default_open_.store(open, std::memory_order_release);
  default_unrestricted_.store(open && it->second->unrestricted, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
}

bool UserTable::AnyCredential() const {
  std::shared_lock lock(mu_);
  for (const auto& [name, user] : users_) {
    if (user->enabled && (!user->passwords.empty() || !user->tokens.empty())) return true;
  }
  return false;
}

}  // namespace corral::auth
