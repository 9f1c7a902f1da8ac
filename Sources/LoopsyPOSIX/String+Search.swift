import CPosix
#if canImport(Glibc)
import Glibc
#endif

extension StringProtocol {
    /// Whether `text` occurs in it, compared byte for byte in UTF-8 (the empty text always does).
    ///
    /// The standard library's `contains(_:)` and `replacing(_:with:)` for strings live in
    /// _StringProcessing, Swift's regex engine, which loopsyd and loopsy are linked without
    /// (1.3 MB; scripts/lld-tied-records.py stops a release link that refers to it). These two
    /// serve instead. They compare UTF-8 bytes, not Characters: a match may start or end inside
    /// a grapheme cluster ("a\r\nb" includes "\n"; "e\u{301}" includes "e") and text Unicode
    /// calls equal in other bytes (precomposed é against e + U+0301) does not match. That is
    /// what the callers want: xargs -I and find's {} substitute bytes, and escaping quotes for
    /// systemd must catch a quote that a combining mark follows.
    public func includes(_ text: some StringProtocol) -> Bool {
        let needle = Array(text.utf8)
        return Array(utf8).withUnsafeBufferPointer { ByteSearch.firstIndex(of: needle, in: $0) } != nil
    }

    /// Every occurrence of `target` replaced by `replacement`, found left to right without
    /// overlapping, byte for byte in UTF-8 (see `includes(_:)`). An empty target replaces nothing.
    public func replacingEvery(_ target: some StringProtocol, with replacement: some StringProtocol) -> String {
        let bytes = Array(utf8), needle = Array(target.utf8)
        guard !needle.isEmpty else { return String(self) }
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var start = 0
        bytes.withUnsafeBufferPointer { haystack in
            while let found = ByteSearch.firstIndex(of: needle, in: haystack, from: start) {
                result += haystack[start..<found]
                result += replacement.utf8
                start = found + needle.count
            }
        }
        result += bytes[start...]
        // Whole UTF-8 sequences are cut and joined only where a whole target began or ended.
        return String(decoding: result, as: UTF8.self)
    }
}

/// Finding bytes in bytes, with glibc's memmem (a multipart parser runs this over every byte of
/// an upload).
public enum ByteSearch {
    /// The index of the first `needle` in `haystack` at or after `start`; the empty needle is
    /// found at `start`.
    public static func firstIndex(of needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>, from start: Int = 0) -> Int? {
        guard !needle.isEmpty else { return start >= 0 && start <= haystack.count ? start : nil }
        guard let base = haystack.baseAddress, start >= 0, haystack.count - start >= needle.count else { return nil }
        // memchr for the first byte then memcmp stopped at every copy of that byte: in a pushed
        // file's random bytes, the multipart boundary's "\r" once in 256, two calls each time.
        let hit = needle.withUnsafeBytes { memmem(base + start, haystack.count - start, $0.baseAddress!, $0.count) }
        guard let hit else { return nil }
        return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
    }
}
