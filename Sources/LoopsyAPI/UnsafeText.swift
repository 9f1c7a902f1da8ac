/// Which characters of text from elsewhere (a peer's name, a message, a program's output) must
/// not reach a person as they are. The places that show such text share these two questions and
/// differ only in what they do with the answer: drop the character, escape it, or keep the line
/// breaks a body needs.
public enum UnsafeText {
    /// A C0 control, DEL or a C1 control: ESC sequences move the cursor, clear or retitle a
    /// terminal; a C1 CSI does the same in one character.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// A character that makes text read as something it is not: a Unicode format character
    /// (bidi overrides and isolates, zero-width ones, tag characters that a person cannot see but
    /// a model reads) or a line or paragraph separator. "x\u{202E}gnp.exe" reads "xexe.png".
    public static func disguises(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value == 0x2028 || scalar.value == 0x2029 || scalar.properties.generalCategory == .format
    }

    /// The zero-width joiner and non-joiner: format characters, but needed to write emoji
    /// sequences and some scripts (Persian) correctly, so text meant to be read keeps them.
    public static func isJoiner(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value == 0x200C || scalar.value == 0x200D
    }
}
