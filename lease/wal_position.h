// PostgreSQL's WAL positions as corral passes them around: an LSN as a number of bytes since 0/0.
// Clients hand one over in pg_lsn's text form ("16/B374D848", what pg_current_wal_insert_lsn()
// returns), for read-your-writes (SPEC rule 6).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace corral::lease {

// A WAL position in bytes since 0/0. 0: unknown (older than every invalidation).
using WalPosition = uint64_t;

// pg_lsn's text form: two hexadecimal numbers of at most 8 digits each, "HI/LO"; nullopt when
// `text` is not one.
std::optional<WalPosition> ParseWalPosition(std::string_view text);
// The text PostgreSQL prints for `position` ("0/16B3748").
std::string FormatWalPosition(WalPosition position);

}  // namespace corral::lease
