// SQLite for LoopsyStore only. SQLITE_TRANSIENT is a cast macro Swift cannot import.
#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>

static inline int csqlite_bind_text_transient(sqlite3_stmt *stmt, int index, const char *text, int length) {
    return sqlite3_bind_text(stmt, index, text, length, SQLITE_TRANSIENT);
}
/// Makes connections allocate page cache slots as they need them. By default each connection
/// takes room for 20 pages (about 87 KB) at its first read, used or not: a fresh loopsyd's
/// five connections held 436 KB that way. sqlite3_config is variadic, and must run before
/// SQLite initialises (it returns SQLITE_MISUSE after).
static inline int csqlite_page_cache_on_demand(void) {
    return sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)0, 0, 0);
}
#endif
