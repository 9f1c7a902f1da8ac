import LoopsyAPI

/// Text from other machines, made safe to print: control characters (other than newline and
/// tab), C1 controls and Unicode format characters (bidi overrides, zero-width joiners, line and
/// paragraph separators) are shown as \u{…}, so a peer's message can never move the cursor,
/// rewrite earlier lines or reorder what a person reads before answering.
enum TerminalText {
    static func safe(_ text: String) -> String {
        var result = ""
        result.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            let control = UnsafeText.isControl(scalar) && scalar != "\n" && scalar != "\t"
            if control || UnsafeText.disguises(scalar) {
                result += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
