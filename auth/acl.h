// corral's users, as Redis 7.0's ACL has them: one user model for both doors (RESP's AUTH and
// HTTP's Basic and bearer credentials). Pure: rule parsing, password and token checks and
// permission checks; no sockets, no config files, no logging.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace corral::auth {

// Redis 7.0's ACL categories (ACL CAT) that corral's commands belong to. @fast and @slow come
// from the command's `fast` flag, as in Redis.
enum Category : uint32_t {
  kKeyspace = 1u << 0,
  kRead = 1u << 1,
  kWrite = 1u << 2,
  kString = 1u << 3,
  kFast = 1u << 4,
  kSlow = 1u << 5,
  kAdmin = 1u << 6,
  kDangerous = 1u << 7,
  kConnection = 1u << 8,
  kScripting = 1u << 9,
  kTransaction = 1u << 10,
  kPubSub = 1u << 11,
};

struct CategoryName {
  std::string_view name;  // without the '@'
  uint32_t bit;
};
// Every category, in ACL CAT's order.
std::span<const CategoryName> Categories();
// The category called `name` (without '@', any case), or 0.
uint32_t FindCategory(std::string_view name);

// One subcommand of a container command (CLIENT KILL, ACL WHOAMI): its name (lower case, without
// the container's) and its own categories.
struct SubcommandInfo {
  std::string_view name;
  uint32_t categories;
};

// What the ACL needs to know of one command: its name (lower case) and categories. Rules are
// resolved against a catalogue, so `+@read` means the read commands corral has. A container
// (CLIENT, ACL, CONFIG...) lists its subcommands: as in Redis 7.0, a category rule then acts on
// each subcommand of that category (`-@dangerous` refuses CLIENT KILL, not CLIENT ID) and on the
// container's own bit only when the container's categories match.
struct CommandInfo {
  std::string_view name;
  uint32_t categories;
  std::span<const SubcommandInfo> subcommands = {};
};
using Catalogue = std::span<const CommandInfo>;

using Digest = std::array<uint8_t, 32>;  // SHA-256
Digest Sha256(std::string_view text);
std::string HexDigest(const Digest& digest);  // 64 lower-case hex digits
// Equal in time independent of where the digests differ.
bool DigestsEqual(const Digest& a, const Digest& b);

// A key pattern and the access it grants: `~p` read and write, `%R~p` read, `%W~p` write.
struct KeyPattern {
  std::string glob;
  bool read = true;
  bool write = true;
};

enum class Access { kRead, kWrite };

// One user. Built by ApplyRules; immutable once in a UserTable (a change makes a new User).
struct User {
  std::string name;
  bool enabled = false;
  bool nopass = false;
  std::vector<Digest> passwords;  // SHA-256 of each password; plain text is never kept
  std::vector<Digest> tokens;     // SHA-256 of each HTTP bearer token (config only, not a rule)
  // Commands: allowed[i] for the catalogue's command i; `all_commands` while +@all holds (so
  // ACL LIST says "+@all"). Subcommand rules ("config|get") override their command's bit.
  std::vector<bool> allowed;
  std::map<std::string, bool> subcommands;  // "config|get" -> allowed
  std::vector<std::string> command_rules;   // the command rules in force, for ACL LIST
  bool all_keys = false;                    // "~*" or allkeys: any key, read and write
  std::vector<KeyPattern> keys;
  bool all_channels = false;          // "&*" or allchannels: any pub/sub channel
  std::vector<std::string> channels;  // `&pattern` rules: globs over channel names

  // True when the user may run every command on every key and channel (+@all, ~*, &*), so the
  // hit path skips every check. Set by Seal(), which UserTable::Put calls.
  bool unrestricted = false;
  void Seal();

  // `command` is the catalogue index, `name` its name, `subcommand` the first argument of a
  // command with subcommands ("get" of CONFIG GET), or empty.
  bool MayRun(size_t command, std::string_view name, std::string_view subcommand = {}) const;
  bool MayAccess(std::string_view key, Access access) const;
  // Redis 7.0's channel rule: PUBLISH and SUBSCRIBE name a channel that one of the user's
  // patterns matches; PSUBSCRIBE's pattern (`is_pattern`) must be one of them, literally.
  bool MayUseChannel(std::string_view channel, bool is_pattern) const;
  // True if `password` is one of the user's (or the user is nopass). Constant time per stored
  // password; does not look at `enabled`.
  bool CheckPassword(std::string_view password) const;
  // ACL LIST's description: "user NAME on #<hash> ~* +@all" in Redis's order.
  std::string Describe() const;
};

// A rule that cannot be applied: `rule` is the offending word, `problem` Redis's reason.
struct RuleError {
  std::string rule;
  std::string problem;
  // "Error in ACL SETUSER modifier '<rule>': <problem>" (Redis 7.0's text).
  std::string Message() const;
};

// Applies Redis ACL rules (`on`, `off`, `nopass`, `resetpass`, `>pw`, `<pw`, `#hash`, `!hash`,
// `~pattern`, `%R~` / `%W~` / `%RW~pattern`, `allkeys`, `resetkeys`, `&pattern`, `allchannels`,
// `resetchannels`, `+cmd`, `-cmd`, `+cmd|sub`, `-cmd|sub`, `+@cat`, `-@cat`, `allcommands`,
// `nocommands`, `reset`) in order to `user`. On an error `user` is left as it was.
std::optional<RuleError> ApplyRules(User& user, std::span<const std::string_view> rules,
                                    Catalogue catalogue);
// Splits a rule string ("on >pw ~* +@all") at spaces and applies it.
std::optional<RuleError> ApplyRuleString(User& user, std::string_view rules, Catalogue catalogue);

// A user as Redis creates `default`: on, nopass, ~*, &*, +@all.
User DefaultUser(Catalogue catalogue);

// The users, shared by every connection on both doors. Thread-safe: lookups take a shared lock;
// a change replaces the User and bumps generation(), which sessions compare to notice it.
class UserTable {
 public:
  explicit UserTable(Catalogue catalogue);

  Catalogue catalogue() const { return catalogue_; }
  // Lock-free: sessions read it before every command.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  void Put(User user);                 // adds or replaces
  bool Remove(std::string_view name);  // false if absent
  std::shared_ptr<const User> Find(std::string_view name) const;
  std::vector<std::shared_ptr<const User>> All() const;  // by name

  // The user if it is enabled and `password` is one of its own (or it is nopass); null
  // otherwise, without saying which (WRONGPASS covers both).
  std::shared_ptr<const User> Authenticate(std::string_view name, std::string_view password) const;
  // The enabled user holding bearer token `token`, or null.
  std::shared_ptr<const User> AuthenticateToken(std::string_view token) const;

  // True when `default` is enabled and nopass: a connection is logged in as it from the start.
  // Lock-free (read per request).
  bool DefaultIsOpen() const { return default_open_.load(std::memory_order_acquire); }
  // DefaultIsOpen() and the default user may do anything: nothing to check per request.
  bool DefaultIsUnrestricted() const {
    return default_unrestricted_.load(std::memory_order_acquire);
  }
  // True when some enabled user has a password or a token: protected mode stands down.
  bool AnyCredential() const;

 private:
  Catalogue catalogue_;
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<const User>, std::less<>> users_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> default_open_{false};
  std::atomic<bool> default_unrestricted_{false};
  void Changed();  // under mu_, exclusive: bumps generation_ and recomputes the flags
};

}  // namespace corral::auth
