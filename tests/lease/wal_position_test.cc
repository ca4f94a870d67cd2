// pg_lsn text in and out (read-your-writes hands corral the client's write's position as text).
#include "lease/wal_position.h"

#include <gtest/gtest.h>

namespace corral::lease {
namespace {

TEST(WalPositionTest, ParsesPgLsnText) {
  EXPECT_EQ(ParseWalPosition("0/0"), 0u);
  EXPECT_EQ(ParseWalPosition("0/16B3748"), 0x16B3748u);
  EXPECT_EQ(ParseWalPosition("16/b374d848"), 0x16'B374D848u);
  EXPECT_EQ(ParseWalPosition("FFFFFFFF/FFFFFFFF"), UINT64_MAX);
}

TEST(WalPositionTest, RejectsWhatIsNotPgLsnText) {
  for (const char* bad : {"", "/", "0/", "/0", "12345", "0/16B3748 ", " 0/1", "0x1/2", "1/2/3",
                          "G/0", "-1/0", "123456789/0", "0/123456789", "+1/0"}) {
    EXPECT_EQ(ParseWalPosition(bad), std::nullopt) << bad;
  }
}

TEST(WalPositionTest, PrintsWhatPostgresPrints) {
  EXPECT_EQ(FormatWalPosition(0), "0/0");
  EXPECT_EQ(FormatWalPosition(0x16B3748), "0/16B3748");
  EXPECT_EQ(FormatWalPosition(0x16'B374D848), "16/B374D848");
  for (WalPosition p : {WalPosition{1}, WalPosition{0x1'0000'0000}, UINT64_MAX}) {
    EXPECT_EQ(ParseWalPosition(FormatWalPosition(p)), p);
  }
}

}  // namespace
}  // namespace corral::lease
