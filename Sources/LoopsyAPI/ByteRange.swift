/// A single `Range: bytes=` request (the only kind clients resuming a download send).
public enum ByteRange {
    public static func parse(_ header: String, size: Int64) -> Range<Int64>? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        // Positions are digits only (RFC 9110 §14.1.2): Int64 would also take "+1".
        guard spec.count == 2, spec.allSatisfy({ $0.utf8.allSatisfy { (48...57).contains($0) } }) else { return nil }
        if spec[0].isEmpty {  // bytes=-N: the last N bytes
            guard let suffix = Int64(spec[1]), suffix > 0, size > 0 else { return nil }
            return max(0, size - suffix)..<size
        }
        guard let start = Int64(spec[0]), start >= 0, start < size else { return nil }
        if spec[1].isEmpty { return start..<size }
        guard let end = Int64(spec[1]), end >= start else { return nil }
        // `end` may be anything up to Int64.max: clamp before adding one.
        return start..<(min(end, size - 1) + 1)
    }
}
