import LoopsyAPI
import Testing

/// The characters every place that shows text from elsewhere refuses to pass on as they are.
@Suite struct UnsafeTextTests {
    @Test func controlsAreC0DelAndC1() {
        for value: UInt32 in [0x00, 0x07, 0x09, 0x0A, 0x1B, 0x1F, 0x7F, 0x80, 0x9B, 0x9F] {
            #expect(UnsafeText.isControl(Unicode.Scalar(value)!), "U+\(String(value, radix: 16))")
        }
        for value: UInt32 in [0x20, 0x41, 0x7E, 0xA0, 0xE9, 0x1F600] {
            #expect(!UnsafeText.isControl(Unicode.Scalar(value)!), "U+\(String(value, radix: 16))")
        }
    }

    @Test func disguisesAreFormatCharactersAndSeparators() {
        // Bidi overrides and isolates, marks, zero-width ones, a tag character, separators.
        for value: UInt32 in [0x202E, 0x202A, 0x2066, 0x2069, 0x200E, 0x200F, 0x061C, 0x200B, 0x200D, 0xFEFF,
                              0xE0041, 0xE0001, 0x2028, 0x2029] {
            #expect(UnsafeText.disguises(Unicode.Scalar(value)!), "U+\(String(value, radix: 16))")
        }
        for value: UInt32 in [0x41, 0x0A, 0xE9, 0x4E2D, 0x1F600, 0xFE0F] {
            #expect(!UnsafeText.disguises(Unicode.Scalar(value)!), "U+\(String(value, radix: 16))")
        }
        #expect(UnsafeText.isJoiner("\u{200D}") && UnsafeText.isJoiner("\u{200C}") && !UnsafeText.isJoiner("\u{200B}"))
    }
}
