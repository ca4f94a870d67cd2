// auth/acl.h: Redis 7.0's ACL rules, passwords, tokens and permission checks.
#include "auth/acl.h"

#include <gtest/gtest.h>

namespace corral::auth {
namespace {

// A catalogue shaped like corral's: the indices below are what MayRun takes.
constexpr CommandInfo kCommands[] = {
    {"get", kRead | kString | kFast},                       // 0
    {"set", kWrite | kString | kSlow},                      // 1
    {"flushall", kKeyspace | kWrite | kDangerous | kSlow},  // 2
    {"config", kAdmin | kDangerous | kSlow},                // 3
    {"ping", kConnection | kFast},                          // 4
};
constexpr size_t kGet = 0, kSet = 1, kFlushAll = 2, kConfig = 3, kPing = 4;

User MakeOn(std::string_view rules, Catalogue catalogue) {
  User user;
  user.name = "app";
  auto error = ApplyRuleString(user, rules, catalogue);
  EXPECT_FALSE(error) << error->Message();
  return user;
}

User Make(std::string_view rules) { return MakeOn(rules, kCommands); }

TEST(AclTest, Sha256IsTheDigestRedisDocumentsForFoobar) {
  EXPECT_EQ(HexDigest(Sha256("foobar")),
            "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2");
}

TEST(AclTest, TheDefaultUserMayDoAnything) {
  User user = DefaultUser(kCommands);
  EXPECT_TRUE(user.unrestricted);
  EXPECT_TRUE(user.CheckPassword("anything"));
  EXPECT_EQ(user.Describe(), "user default on nopass ~* &* +@all");
}

TEST(AclTest, PasswordsAreKeptAsTheirDigestOnly) {
  User user = Make("on >foobar >other");
  EXPECT_TRUE(user.CheckPassword("foobar"));
  EXPECT_TRUE(user.CheckPassword("other"));
  EXPECT_FALSE(user.CheckPassword("foobaR"));
  EXPECT_FALSE(user.CheckPassword(""));
  std::string described = user.Describe();
  EXPECT_EQ(described.find("foobar"), std::string::npos);
  EXPECT_NE(described.find("#c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"),
            std::string::npos);
  ASSERT_FALSE(ApplyRuleString(user, "<foobar", kCommands));
  EXPECT_FALSE(user.CheckPassword("foobar"));
  EXPECT_TRUE(user.CheckPassword("other"));
}

TEST(AclTest, AHashedPasswordWorksAsThePlainOne) {
  User user = Make("on #c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2");
  EXPECT_TRUE(user.CheckPassword("foobar"));
  EXPECT_FALSE(user.CheckPassword("foobarx"));
}

TEST(AclTest, NopassAndResetpass) {
  User user = Make("on >pw nopass");
  EXPECT_TRUE(user.CheckPassword("whatever"));
  EXPECT_TRUE(user.passwords.empty());
  ASSERT_FALSE(ApplyRuleString(user, "resetpass", kCommands));
  EXPECT_FALSE(user.CheckPassword("whatever"));
  EXPECT_FALSE(user.CheckPassword(""));
}

TEST(AclTest, BadRulesAreRefusedWithRedisTextsAndChangeNothing) {
  User user = Make("on >pw ~user:* +@read");
  const User before = user;
  struct Case {
    std::string_view rules, offending, problem_start;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"+@nonsense", "+@nonsense", "Unknown command or category name in ACL"},
           {"+nosuchcommand", "+nosuchcommand", "Unknown command or category name in ACL"},
           {"#abc", "#abc", "The password hash must be exactly 64 characters"},
           {"<notmine", "<notmine", "The password you are trying to remove"},
           {"bogus", "bogus", "Syntax error"},
           {"%X~k", "%X~k", "Syntax error"},
           {"off allkeys ~more", "~more", "Adding a pattern after the * pattern"},
       }) {
    auto error = ApplyRuleString(user, c.rules, kCommands);
    ASSERT_TRUE(error) << c.rules;
    EXPECT_EQ(error->rule, c.offending);
    EXPECT_TRUE(error->problem.starts_with(c.problem_start)) << error->problem;
    EXPECT_TRUE(error->Message().starts_with("Error in ACL SETUSER modifier '" +
                                             std::string(c.offending) + "': "));
    EXPECT_EQ(user.Describe(), before.Describe()) << c.rules;
    EXPECT_TRUE(user.enabled) << c.rules;
  }
}

TEST(AclTest, CategoriesAndCommandsApplyInOrder) {
  User user = Make("on nopass ~* +@all -@dangerous");
  EXPECT_TRUE(user.MayRun(kGet, "get"));
  EXPECT_TRUE(user.MayRun(kSet, "set"));
  EXPECT_FALSE(user.MayRun(kFlushAll, "flushall"));
  EXPECT_FALSE(user.MayRun(kConfig, "config", "set"));
  EXPECT_FALSE(user.unrestricted);
  EXPECT_EQ(user.Describe(), "user app on nopass ~* resetchannels +@all -@dangerous");

  User reader = Make("on nopass ~* +@read +ping");
  EXPECT_TRUE(reader.MayRun(kGet, "get"));
  EXPECT_TRUE(reader.MayRun(kPing, "ping"));
  EXPECT_FALSE(reader.MayRun(kSet, "set"));
  EXPECT_FALSE(reader.MayRun(kFlushAll, "flushall"));
}

TEST(AclTest, ASubcommandRuleOverridesItsCommand) {
  User user = Make("on nopass ~* -config +config|get");
  EXPECT_TRUE(user.MayRun(kConfig, "config", "get"));
  EXPECT_TRUE(user.MayRun(kConfig, "config", "GET"));
  EXPECT_FALSE(user.MayRun(kConfig, "config", "set"));
  // A whole-command rule afterwards replaces the subcommand's.
  ASSERT_FALSE(ApplyRuleString(user, "-config", kCommands));
  EXPECT_FALSE(user.MayRun(kConfig, "config", "get"));
}

// A container's subcommands carry their own categories, as Redis 7.0's CLIENT does: a category
// rule acts on each subcommand of that category, and on the container's own bit only when the
// container's categories match.
constexpr SubcommandInfo kClientSubs[] = {
    {"id", kSlow | kConnection},
    {"kill", kAdmin | kDangerous | kSlow | kConnection},
};
constexpr SubcommandInfo kCommandSubs[] = {{"info", kSlow | kConnection}};
constexpr CommandInfo kWithContainers[] = {
    {"get", kRead | kString | kFast},                // 0
    {"client", kSlow, kClientSubs},                  // 1
    {"command", kSlow | kConnection, kCommandSubs},  // 2
};

TEST(AclTest, ACategoryActsOnEachSubcommandOfAContainer) {
  User app = MakeOn("on nopass ~* +@all -@dangerous", kWithContainers);
  EXPECT_TRUE(app.MayRun(0, "get"));
  EXPECT_TRUE(app.MayRun(1, "client", "id"));
  EXPECT_TRUE(app.MayRun(1, "client", "ID"));
  EXPECT_FALSE(app.MayRun(1, "client", "kill")) << "CLIENT KILL is @dangerous";
  EXPECT_FALSE(app.MayRun(1, "client", "Kill"));
  EXPECT_EQ(app.Describe(), "user app on nopass ~* resetchannels +@all -@dangerous");
  // A whole-command rule afterwards takes every subcommand back.
  ASSERT_FALSE(ApplyRuleString(app, "+client", kWithContainers));
  EXPECT_TRUE(app.MayRun(1, "client", "kill"));

  User admin = MakeOn("on nopass ~* +@admin", kWithContainers);
  EXPECT_TRUE(admin.MayRun(1, "client", "kill"));
  EXPECT_FALSE(admin.MayRun(1, "client", "id")) << "CLIENT ID is not @admin";
  EXPECT_FALSE(admin.MayRun(0, "get"));

  // The container's own categories: COMMAND alone is @connection, CLIENT alone is not.
  User connection = MakeOn("on nopass ~* +@connection", kWithContainers);
  EXPECT_TRUE(connection.MayRun(2, "command"));
  EXPECT_TRUE(connection.MayRun(2, "command", "info"));
  EXPECT_TRUE(connection.MayRun(1, "client", "id"));
  EXPECT_TRUE(connection.MayRun(1, "client", "kill")) << "CLIENT KILL is @connection too";
  EXPECT_FALSE(connection.MayRun(1, "client")) << "no subcommand: the container's own bit";

  User none = MakeOn("on nopass ~* +@all -@connection", kWithContainers);
  EXPECT_FALSE(none.MayRun(2, "command"));
  EXPECT_FALSE(none.MayRun(1, "client", "id"));
  EXPECT_TRUE(none.MayRun(0, "get"));
}

TEST(AclTest, KeyPatternsGrantReadAndWriteSeparately) {
  User user = Make("on nopass +@all ~user:* %R~order:* %W~audit:*");
  EXPECT_TRUE(user.MayAccess("user:1", Access::kRead));
  EXPECT_TRUE(user.MayAccess("user:1", Access::kWrite));
  EXPECT_TRUE(user.MayAccess("order:1", Access::kRead));
  EXPECT_FALSE(user.MayAccess("order:1", Access::kWrite));
  EXPECT_FALSE(user.MayAccess("audit:1", Access::kRead));
  EXPECT_TRUE(user.MayAccess("audit:1", Access::kWrite));
  EXPECT_FALSE(user.MayAccess("session:1", Access::kRead));
  EXPECT_FALSE(user.unrestricted);
  EXPECT_EQ(user.Describe(),
            "user app on nopass ~user:* %R~order:* %W~audit:* resetchannels +@all");
  ASSERT_FALSE(ApplyRuleString(user, "resetkeys", kCommands));
  EXPECT_FALSE(user.MayAccess("user:1", Access::kRead));
}

TEST(AclTest, ResetLeavesAUserThatCanDoNothing) {
  User user = Make("on nopass ~* +@all");
  ASSERT_FALSE(ApplyRuleString(user, "reset", kCommands));
  EXPECT_FALSE(user.enabled);
  EXPECT_FALSE(user.CheckPassword(""));
  EXPECT_FALSE(user.MayRun(kGet, "get"));
  EXPECT_FALSE(user.MayAccess("k", Access::kRead));
  EXPECT_EQ(user.Describe(), "user app off resetchannels -@all");
}

TEST(UserTableTest, AuthenticatesEnabledUsersByPasswordOrToken) {
  UserTable table(kCommands);
  User app = Make("on >secret ~app:* +@read");
  app.tokens.push_back(Sha256("tok-1"));
  table.Put(app);
  User off = Make("off >secret");
  off.name = "sleeper";
  off.tokens.push_back(Sha256("tok-2"));
  table.Put(off);

  ASSERT_NE(table.Authenticate("app", "secret"), nullptr);
  EXPECT_EQ(table.Authenticate("app", "secret")->name, "app");
  EXPECT_EQ(table.Authenticate("app", "wrong"), nullptr);
  EXPECT_EQ(table.Authenticate("nobody", "secret"), nullptr);
  EXPECT_EQ(table.Authenticate("sleeper", "secret"), nullptr);  // disabled
  ASSERT_NE(table.AuthenticateToken("tok-1"), nullptr);
  EXPECT_EQ(table.AuthenticateToken("tok-1")->name, "app");
  EXPECT_EQ(table.AuthenticateToken("tok-2"), nullptr);  // disabled
  EXPECT_EQ(table.AuthenticateToken("tok-"), nullptr);
  EXPECT_TRUE(table.AnyCredential());
}

TEST(UserTableTest, ChangesBumpTheGenerationAndReplaceTheUser) {
  UserTable table(kCommands);
  table.Put(DefaultUser(kCommands));
  EXPECT_TRUE(table.DefaultIsOpen());
  EXPECT_FALSE(table.AnyCredential());
  const uint64_t g = table.generation();
  std::shared_ptr<const User> before = table.Find("default");

  User changed = *before;
  ASSERT_FALSE(ApplyRuleString(changed, ">pw", kCommands));
  table.Put(changed);
  EXPECT_GT(table.generation(), g);
  EXPECT_FALSE(table.DefaultIsOpen());
  EXPECT_TRUE(table.AnyCredential());
  EXPECT_TRUE(before->nopass);  // a session's copy does not change under it
  EXPECT_FALSE(table.Find("default")->nopass);

  EXPECT_TRUE(table.Remove("default"));
  EXPECT_FALSE(table.Remove("default"));
  EXPECT_EQ(table.Find("default"), nullptr);
  EXPECT_EQ(table.All().size(), 0u);
}

}  // namespace
}  // namespace corral::auth
