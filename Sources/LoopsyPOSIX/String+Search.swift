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
        firstByteOffset(of: Array(text.utf8), in: Array(utf8), from: 0) != nil
    }

    /// Every occurrence of `target` replaced by `replacement`, found left to right without
    /// overlapping, byte for byte in UTF-8 (see `includes(_:)`). An empty target replaces nothing.
    public func replacingEvery(_ target: some StringProtocol, with replacement: some StringProtocol) -> String {
        let bytes = Array(utf8), needle = Array(target.utf8)
        guard !needle.isEmpty else { return String(self) }
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var start = 0
        while let found = firstByteOffset(of: needle, in: bytes, from: start) {
            result += bytes[start..<found]
            result += replacement.utf8
            start = found + needle.count
        }
        result += bytes[start...]
        // Whole UTF-8 sequences are cut and joined only where a whole target began or ended.
        return String(decoding: result, as: UTF8.self)
    }
}

private func firstByteOffset(of needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
    guard !needle.isEmpty else { return start }
    guard bytes.count - start >= needle.count else { return nil }
    for offset in start...(bytes.count - needle.count) where bytes[offset] == needle[0] {
        if bytes[offset..<(offset + needle.count)].elementsEqual(needle) { return offset }
    }
    return nil
}
