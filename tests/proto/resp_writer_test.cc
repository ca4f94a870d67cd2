// Byte-exact tests for the RESP2 reply writer.
#include "proto/resp_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "proto/errors.h"

namespace corral::proto {
namespace {

using namespace std::string_literals;

TEST(RespWriter, SimpleAndError) {
  std::string out;
  AppendSimple(out, "OK");
  AppendSimple(out, "");
  AppendError(out, "ERR syntax error");
  AppendError(out, kBusyPrefix, "load shed: blocked");
  EXPECT_EQ(out, "+OK\r\n+\r\n-ERR syntax error\r\n-BUSY load shed: blocked\r\n");
}

TEST(RespWriter, Integers) {
  std::string out;
  AppendInteger(out, 0);
  AppendInteger(out, -1);
  AppendInteger(out, 1234567890);
  AppendInteger(out, std::numeric_limits<int64_t>::max());
  AppendInteger(out, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(out, ":0\r\n:-1\r\n:1234567890\r\n:9223372036854775807\r\n:-9223372036854775808\r\n");
}

TEST(RespWriter, BulkIsBinarySafe) {
  std::string out;
  AppendBulk(out, "hello");
  AppendBulk(out, "");
  AppendBulk(out, "a\r\n\0b"s);
  EXPECT_EQ(out, "$5\r\nhello\r\n$0\r\n\r\n$5\r\na\r\n\0b\r\n"s);
}

TEST(RespWriter, LargeBulkHeader) {
  std::string out;
  const std::string value(123456, 'x');
  AppendBulk(out, value);
  EXPECT_EQ(out, "$123456\r\n" + value + "\r\n");
}

TEST(RespWriter, NullsAndArrays) {
  std::string out;
  AppendNullBulk(out);
  AppendNullArray(out);
  AppendArrayHeader(out, 0);
  AppendArrayHeader(out, 3);
  AppendArrayHeader(out, std::numeric_limits<size_t>::max());
  EXPECT_EQ(out, "$-1\r\n*-1\r\n*0\r\n*3\r\n*18446744073709551615\r\n");
}

TEST(RespWriter, Resp3Types) {
  std::string out;
  AppendNull(out);
  AppendMapHeader(out, 2);
  AppendVerbatim(out, "txt", "a\r\nb");
  AppendVerbatim(out, "txt", "");
  EXPECT_EQ(out, "_\r\n%2\r\n=8\r\ntxt:a\r\nb\r\n=4\r\ntxt:\r\n");
}

TEST(RespWriter, WhatDependsOnTheProtocol) {
  std::string two, three;
  for (auto [out, protocol] : {std::pair<std::string*, int>{&two, 2}, {&three, 3}}) {
    AppendNil(*out, protocol);
    AppendMap(*out, 3, protocol);
    AppendText(*out, "hi", protocol);
  }
  EXPECT_EQ(two, "$-1\r\n*6\r\n$2\r\nhi\r\n");
  EXPECT_EQ(three, "_\r\n%3\r\n=6\r\ntxt:hi\r\n");
}

TEST(RespWriter, AppendsAfterExistingBytes) {
  std::string out = "prefix";
  AppendArrayHeader(out, 2);
  AppendBulk(out, "GET");
  AppendInteger(out, 7);
  EXPECT_EQ(out, "prefix*2\r\n$3\r\nGET\r\n:7\r\n");
}

}  // namespace
}  // namespace corral::proto
