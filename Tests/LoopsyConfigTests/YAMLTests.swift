import Testing
@testable import LoopsyConfig

@Suite struct YAMLTests {
    func parse(_ text: String) throws -> YAMLNode? { try YAML.parse(text) }

    @Test func blockMappingsListsAndScalars() throws {
        let node = try #require(try parse("""
            # comment
            server:
              port: 19532   # trailing comment
              host: "0.0.0.0"
              name: it's # fine
            list: [a, "b c", 'd''e', 3]
            empty: {}
            peers:
              - address: 10.0.0.1
                port: 1
              - address: 10.0.0.2
            plain:
            - x
            - "y # not a comment"
            nothing:
            """))
        guard case .mapping(let top, _) = node else { Issue.record("not a mapping"); return }
        #expect(top.map(\.key) == ["server", "list", "empty", "peers", "plain", "nothing"])
        guard case .mapping(let server, _) = top[0].value else { Issue.record("server"); return }
        #expect(server[0].value.int == 19532)
        #expect(server[1].value == .scalar("0.0.0.0", quoted: true, line: 4))
        #expect(server[1].value.int == nil)
        #expect(server[2].value == .scalar("it's", quoted: false, line: 5))
        guard case .sequence(let list, _) = top[1].value else { Issue.record("list"); return }
        #expect(list.map { if case .scalar(let text, _, _) = $0 { return text } else { return "?" } } == ["a", "b c", "d'e", "3"])
        guard case .sequence(let peers, _) = top[3].value, case .mapping(let first, _) = peers[0] else {
            Issue.record("peers")
            return
        }
        #expect(peers.count == 2)
        #expect(first.map(\.key) == ["address", "port"])
        guard case .sequence(let plain, _) = top[4].value else { Issue.record("plain"); return }
        #expect(plain[1] == .scalar("y # not a comment", quoted: true, line: 14))
        #expect(top[5].value.isNull)
    }

    @Test func typesFollowTheCoreSchema() throws {
        let node = try #require(try parse("a: true\nb: no\nc: ~\nd: '5'\ne: -3\n"))
        guard case .mapping(let pairs, _) = node else { Issue.record("mapping"); return }
        #expect(pairs[0].value.bool == true)
        #expect(pairs[1].value.bool == nil)  // YAML 1.2: "no" is a string
        #expect(pairs[2].value.isNull)
        #expect(pairs[3].value.int == nil)
        #expect(pairs[4].value.int == -3)
    }

    @Test(arguments: ["a: [1, 2", "a: \"open", "a: |\n  text", "a: &x 1", "a: 1\na: 2", "a:\n\tb: 1", "  a: 1\nb: 2"])
    func unsupportedOrBrokenInputIsAnError(text: String) {
        #expect(throws: YAMLError.self) { try YAML.parse(text) }
    }

    @Test func windowsLineEndsAreLineEnds() throws {
        // "\r\n" is one Character in Swift: split into Characters, such a file was one line.
        let node = try #require(try parse("server:\r\n  port: 1\r\n  host: 'x' # c\r\nname: y\r\n"))
        guard case .mapping(let top, _) = node, case .mapping(let server, _) = top[0].value else {
            Issue.record("not a mapping")
            return
        }
        try #require(top.count == 2 && server.count == 2)
        #expect(top.map(\.key) == ["server", "name"])
        #expect(server[0].value.int == 1)
        #expect(server[1].value == .scalar("x", quoted: true, line: 3))
        #expect(top[1].value == .scalar("y", quoted: false, line: 4))
    }

    @Test func errorsInCRLFFilesNameTheirLine() throws {
        let node = try #require(try parse("# top\r\n\r\na: 1\r\n  # inner\r\nb: [x]\r\n"))
        guard case .mapping(let top, _) = node else { Issue.record("not a mapping"); return }
        try #require(top.count == 2)
        #expect(top[1].value == .sequence([.scalar("x", quoted: false, line: 5)], line: 5))
        let error = try #require(throws: YAMLError.self) { try YAML.parse("a: 1\r\n\r\nb: [x\r\n") }
        #expect(error.line == 3)
    }

    @Test func textBeyondASCIIIsKeptWhole() throws {
        let node = try #require(try parse("""
            café: naïve — ok # 注释
            "clé ü": ["é, ü", 'ß''x', {k: 日本}]
            emoji: "👩‍💻 \\" x"
            """))
        guard case .mapping(let top, _) = node else { Issue.record("not a mapping"); return }
        try #require(top.count == 3)
        #expect(top.map(\.key) == ["café", "clé ü", "emoji"])
        #expect(top[0].value == .scalar("naïve — ok", quoted: false, line: 1))
        guard case .sequence(let items, _) = top[1].value else { Issue.record("sequence"); return }
        try #require(items.count == 3)
        #expect(items[0] == .scalar("é, ü", quoted: true, line: 2))
        #expect(items[1] == .scalar("ß'x", quoted: true, line: 2))
        #expect(items[2] == .mapping([("k", .scalar("日本", quoted: false, line: 2))], line: 2))
        #expect(top[2].value == .scalar("👩‍💻 \" x", quoted: true, line: 3))
        let error = try #require(throws: YAMLError.self) { try YAML.parse("a: \"\\é\"") }
        #expect(error.message == "unsupported escape '\\é'")
    }

    @Test func deepNestingIsAnErrorNotACrash() throws {
        let flow = try #require(throws: YAMLError.self) {
            try YAML.parse("a: " + String(repeating: "[", count: 100_000))
        }
        #expect(flow.message == "nested more than \(YAML.maxDepth) levels deep")
        let blocks = (0...YAML.maxDepth).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n")
        let block = try #require(throws: YAMLError.self) { try YAML.parse(blocks) }
        #expect(block.line == YAML.maxDepth + 1)
        let items = (0...YAML.maxDepth).map { String(repeating: " ", count: 2 * $0) + "- k\($0):" }.joined(separator: "\n")
        #expect(throws: YAMLError.self) { try YAML.parse(items) }
        // Nesting up to the limit still parses.
        let flat = "a: " + String(repeating: "[", count: YAML.maxDepth - 1) + String(repeating: "]", count: YAML.maxDepth - 1)
        #expect(try parse(flat) != nil)
    }

    @Test func emptyDocumentIsNil() throws {
        #expect(try parse("# only a comment\n\n") == nil)
    }
}
