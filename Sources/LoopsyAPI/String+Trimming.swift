extension StringProtocol {
    /// The text without leading and trailing characters from `set` (no Foundation needed).
    /// "\r\n" is one Character in Swift, so the default set names it too.
    public func trimming(_ set: Set<Character> = [" ", "\t", "\r", "\n", "\r\n"]) -> String {
        var text = Substring(self)
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return String(text)
    }
}
