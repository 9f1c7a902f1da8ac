/// What `trimming()` takes off both ends. "\r\n" is one Character in Swift, so it is named too.
private let whitespace: Set<Character> = [" ", "\t", "\r", "\n", "\r\n"]

extension StringProtocol {
    /// The text without leading and trailing characters from `set` (no Foundation needed).
    public func trimming(_ set: Set<Character>) -> String {
        var text = Substring(self)
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return String(text)
    }

    /// The text without leading and trailing spaces, tabs and line breaks. It runs on every
    /// request (credentials, header values): text that neither starts nor ends with one of those
    /// bytes, as most does, is returned without looking at its characters.
    public func trimming() -> String {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        let bytes = Substring(self).utf8
        guard let first = bytes.first, let last = bytes.last, isSpace(first) || isSpace(last) else { return String(self) }
        return trimming(whitespace)
    }
}

extension String {
    /// The text cut to at most `limit` UTF-8 bytes on a character boundary, marked with "…"
    /// when cut (for text from elsewhere that goes into logs and error messages).
    public func cut(toUTF8Bytes limit: Int) -> String {
        guard utf8.count > limit else { return self }
        var result = ""
        var bytes = 0
        for character in self {
            let size = character.utf8.count
            if bytes + size > limit - 3 { break }
            result.append(character)
            bytes += size
        }
        return result + "…"
    }
}
