/// Text from other machines, made safe to print: control characters (other than newline and
/// tab), C1 controls and Unicode format characters (bidi overrides, zero-width joiners, line and
/// paragraph separators) are shown as \u{…}, so a peer's message can never move the cursor,
/// rewrite earlier lines or reorder what a person reads before answering.
enum TerminalText {
    static func safe(_ text: String) -> String {
        var result = ""
        result.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            let value = scalar.value
            let control = (value < 0x20 && value != 0x0A && value != 0x09) || (0x7F...0x9F).contains(value)
            if control || scalar.properties.generalCategory == .format
                || value == 0x2028 || value == 0x2029 {
                result += "\\u{\(String(value, radix: 16))}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
