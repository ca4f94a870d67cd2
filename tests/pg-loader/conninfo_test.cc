// Default connection parameters are added to both libpq forms without overriding the operator's.
#include "pg-loader/conninfo.h"

#include <gtest/gtest.h>

namespace corral::pg {
namespace {

const ConnParams kDefaults = {{"connect_timeout", "2"}, {"keepalives", "1"}};

TEST(WithDefaultParamsTest, AppendsToKeyValueStrings) {
  EXPECT_EQ(WithDefaultParams("host=127.0.0.1 port=5433 dbname=app", kDefaults),
            "host=127.0.0.1 port=5433 dbname=app connect_timeout=2 keepalives=1");
  EXPECT_EQ(WithDefaultParams("", kDefaults), "connect_timeout=2 keepalives=1");
  EXPECT_EQ(WithDefaultParams("host=h ", kDefaults), "host=h connect_timeout=2 keepalives=1");
}

TEST(WithDefaultParamsTest, KeepsKeysTheOperatorSet) {
  EXPECT_EQ(WithDefaultParams("host=h connect_timeout = 10", kDefaults),
            "host=h connect_timeout = 10 keepalives=1");
  // A key that merely ends with the name is a different key.
  EXPECT_EQ(WithDefaultParams("host=h tcp_keepalives=0", {{"keepalives", "1"}}),
            "host=h tcp_keepalives=0 keepalives=1");
}

TEST(WithDefaultParamsTest, AppendsToUris) {
  EXPECT_TRUE(IsConnUri("postgresql://app@h:5433/app"));
  EXPECT_TRUE(IsConnUri("postgres://h"));
  EXPECT_FALSE(IsConnUri("host=postgresql://"));
  EXPECT_EQ(WithDefaultParams("postgresql://app@h:5433/app", kDefaults),
            "postgresql://app@h:5433/app?connect_timeout=2&keepalives=1");
  EXPECT_EQ(WithDefaultParams("postgres://h/app?sslmode=disable&connect_timeout=9", kDefaults),
            "postgres://h/app?sslmode=disable&connect_timeout=9&keepalives=1");
}

}  // namespace
}  // namespace corral::pg
