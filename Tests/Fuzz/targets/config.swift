// config.yaml: the YAML subset reader and the config parser behind it (a hand-edited file, or
// one a session copies): errors, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? YAML.parse(text)
    _ = try? ConfigParser.parse(text)
    return 0
}
