// Start-up and event logging for corral-server: one line per event on stderr, key=value fields.
// Thread-safe (one write(2) per line). Not for the request hot path.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

namespace corral::server {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug|info|warn|error"; false if the name is unknown.
bool ParseLogLevel(std::string_view name, LogLevel* level);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// Writes "ts=<iso8601> level=<l> event=<event> <fields>\n". `fields` is already "k=v k=v"; values
// with spaces should be quoted by the caller with LogQuote.
void Log(LogLevel level, std::string_view event, std::string_view fields = {});
std::string LogQuote(std::string_view value);

}  // namespace corral::server
