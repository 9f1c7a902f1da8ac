// SQLite for LoopsyStore only. SQLITE_TRANSIENT is a cast macro Swift cannot import.
#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>

static inline int csqlite_bind_text_transient(sqlite3_stmt *stmt, int index, const char *text, int length) {
    return sqlite3_bind_text(stmt, index, text, length, SQLITE_TRANSIENT);
}
/// SQLite's process-wide settings. sqlite3_config is variadic, and must run before SQLite
/// initialises (it returns SQLITE_MISUSE after). Returns the first failure's code.
///
/// - Connections allocate page cache slots as they need them. By default each connection takes
///   room for 20 pages (about 87 KB) at its first read, used or not: a fresh loopsyd's five
///   connections held 436 KB that way.
/// - No memory statistics (nothing reads them): with them, every allocation and free takes a
///   global mutex to count it. Debian builds SQLite without lookaside, so every allocation
///   goes to malloc (28 for a context PUT), and the counting cost 2% of a PUT's instructions.
static inline int csqlite_configure(void) {
    int pageCache = sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)0, 0, 0);
    int memoryStatus = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return pageCache != SQLITE_OK ? pageCache : memoryStatus;
}
#endif
