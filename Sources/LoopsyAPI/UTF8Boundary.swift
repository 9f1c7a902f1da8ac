/// Where a stream of bytes can be cut without splitting a UTF-8 character (job output is sent
/// as text in pieces).
public enum UTF8Boundary {
    /// The index up to which `bytes` holds only complete UTF-8 sequences (invalid bytes count as
    /// complete, so they are not held back forever).
    public static func lastComplete(_ bytes: [UInt8]) -> Int {
        var index = bytes.count
        var continuation = 0
        while index > 0 && continuation < 3 && bytes[index - 1] & 0xC0 == 0x80 {
            index -= 1
            continuation += 1
        }
        guard index > 0 else { return bytes.count }
        let lead = bytes[index - 1]
        let needed: Int
        switch lead {
        case 0xF0...0xF7: needed = 3
        case 0xE0...0xEF: needed = 2
        case 0xC0...0xDF: needed = 1
        default: needed = 0
        }
        return needed > continuation ? index - 1 : bytes.count
    }
}
