import Foundation
import Testing
@testable import LoopsyConfig

@Suite struct ConfigParserTests {
    @Test func emptyFileGivesSeedDefaults() throws {
        let (config, warnings) = try ConfigParser.parse("")
        #expect(config == LoopsyConfig())
        #expect(config.server.port == 19532)
        #expect(config.execution.defaultTimeout == 300_000)
        #expect(config.rateLimits.execute == 30)
        #expect(warnings.isEmpty)
    }

    @Test func seedReadmeExampleParses() throws {
        let yaml = """
            server:
              port: 19532
              host: 0.0.0.0
              hostname: leo
            auth:
              apiKey: abc
              allowedKeys:
                peer-name: k1
            tls:
              enabled: false
              pinnedCerts:
                peer-name: "E6:50:f5:54:ac:7c:76:ce:db:dd:01:34:9b:42:53:1c:54:ea:ba:93:40:50:8b:fc:dc:24:09:b9:1f:78:fa:51"
            execution:
              denylist: [rm, rmdir, format, mkfs, dd, shutdown, reboot]
              maxConcurrent: 10
              defaultTimeout: 300000
            transfer:
              allowedPaths: [/Users/you]
              deniedPaths: [/Users/you/.ssh, /Users/you/.gnupg]
              maxFileSize: 1073741824
            rateLimits:
              execute: 30
              transfer: 10
              context: 60
            discovery:
              enabled: true
              manualPeers:
                - address: 192.168.1.75
                  port: 19532
            logging:
              level: info
            """
        let (config, warnings) = try ConfigParser.parse(yaml)
        #expect(warnings.isEmpty)
        #expect(config.server.hostname == "leo")
        #expect(config.auth.allowedKeys == ["peer-name": "k1"])
        // Pins are normalised to lowercase hex without colons.
        #expect(config.tls.pinnedCerts == ["peer-name": "e650f554ac7c76cedbdd01349b42531c54eaba9340508bfcdc2409b91f78fa51"])
        // A pin that is not a SHA-256 fingerprint stops the daemon rather than turning pinning off.
        #expect(throws: ConfigError.self) {
            try ConfigParser.parse("tls:\n  pinnedCerts:\n    bob: deadbeef\n")
        }
        #expect(config.transfer.allowedPaths == ["/Users/you"])
        #expect(config.discovery.manualPeers == [LoopsyConfig.ManualPeer(address: "192.168.1.75", port: 19532)])
    }

    @Test(arguments: [
        ("server:\n  port: abc\n", "server.port"),
        ("server:\n  port: 70000\n", "server.port"),
        ("server:\n  connectionMemoryKiB: 4\n", "server.connectionMemoryKiB"),
        ("server:\n  connectionMemoryKiB: 129\n", "server.connectionMemoryKiB"),
        ("tls:\n  enabled: yes please\n", "tls.enabled"),
        ("execution:\n  denylist: rm\n", "execution.denylist"),
        ("rateLimits:\n  context: -1\n", "rateLimits.context"),
        ("logging:\n  level: loud\n", "logging.level"),
        ("logging:\n  maxFileBytes: 1000\n", "logging.maxFileBytes"),
        ("discovery:\n  manualPeers:\n    - port: 1\n", "discovery.manualPeers[0].address"),
        ("server: 5\n", "server"),
    ])
    func wrongTypesNameTheKey(yaml: String, key: String) {
        #expect {
            try ConfigParser.parse(yaml)
        } throws: { error in
            "\(error)".contains("'\(key)'")
        }
    }

    /// Every number in the template (every key `loopsy init` writes) has a range: 2^63 - 1 and
    /// a number of 20 digits are refused with the key, its range and the line, never taken (a
    /// large audit.retentionDays was taken and stopped the daemon at its first upkeep; a large
    /// transfer.maxFileSize let any push stop it).
    @Test func everyNumberInTheTemplateHasARange() throws {
        let template = ConfigFile.template(apiKey: Secrets.apiKey(), port: 4000)
        let lines = template.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var numeric = 0
        var sections: [String] = []
        for (index, line) in lines.enumerated() {
            let indent = line.prefix { $0 == " " }.count
            let text = line.dropFirst(indent).split(separator: "#", maxSplits: 1).first.map(String.init) ?? ""
            guard let colon = text.firstIndex(of: ":"), !text.hasPrefix("-") else { continue }
            let name = String(text[..<colon])
            let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            sections = Array(sections.prefix(indent / 2))
            guard !value.isEmpty else { sections.append(name); continue }
            guard Int(value) != nil else { continue }
            numeric += 1
            let key = (sections + [name]).joined(separator: ".")
            for huge in ["9223372036854775807", "99999999999999999999"] {
                var changed = lines
                changed[index] = String(line.prefix(indent)) + name + ": " + huge
                #expect {
                    try ConfigParser.parse(changed.joined(separator: "\n"))
                } throws: { error in
                    let message = "\(error)"
                    return message.contains("'\(key)'") && message.contains("must be between")
                        && message.contains("(line \(index + 1))")
                }
            }
        }
        #expect(numeric >= 35)
    }

    @Test func connectionMemoryIsReadInKiB() throws {
        #expect(LoopsyConfig().server.connectionMemoryKiB == 16)
        #expect(try ConfigParser.parse("server:\n  connectionMemoryKiB: 64\n").config.server.connectionMemoryKiB == 64)
    }

    @Test func unknownKeysWarnAndAreIgnored() throws {
        let (config, warnings) = try ConfigParser.parse("server:\n  port: 1234\n  colour: blue\nextras: 1\n")
        #expect(config.server.port == 1234)
        #expect(warnings.contains("unknown config key 'server.colour' ignored"))
        #expect(warnings.contains("unknown config key 'extras' ignored"))
    }

    @Test func templateParsesBackToDefaultsWithItsKey() throws {
        let key = Secrets.apiKey()
        let (config, warnings) = try ConfigParser.parse(ConfigFile.template(apiKey: key, port: 4000))
        #expect(warnings.isEmpty)
        var expected = LoopsyConfig()
        expected.auth.apiKey = key
        expected.server.port = 4000
        #expect(config == expected)
    }

    @Test func apiKeyReplacementKeepsEverythingElse() throws {
        let original = ConfigFile.template(apiKey: String(repeating: "a", count: 64))
        let replaced = try ConfigFile.replacingAPIKey(in: original, with: String(repeating: "b", count: 64))
        #expect(try ConfigParser.parse(replaced).config.auth.apiKey == String(repeating: "b", count: 64))
        #expect(replaced.replacingOccurrences(of: String(repeating: "b", count: 64), with: String(repeating: "a", count: 64)) == original)
        #expect(throws: ConfigError.self) { try ConfigFile.replacingAPIKey(in: "server:\n  port: 1\n", with: "x") }
    }

    @Test func secretsAreRandomAndCompareInConstantShape() {
        let first = Secrets.apiKey(), second = Secrets.apiKey()
        #expect(first.count == 64)
        #expect(first != second)
        #expect(Secrets.equal(first, first))
        #expect(!Secrets.equal(first, second))
        #expect(!Secrets.equal(first, String(first.dropLast())))
        #expect(!Secrets.equal("", first))
        #expect(!Secrets.equal(first, ""))
        #expect(Secrets.equal("", ""))
        // A prefix, an extension by a NUL byte, one byte changed anywhere, non-ASCII text.
        #expect(!Secrets.equal(String(first.dropLast()), first))
        #expect(!Secrets.equal(first + "\u{0}", first))
        for index in 0..<64 {
            var bytes = Array(first.utf8)
            bytes[index] ^= 1
            #expect(!Secrets.equal(String(decoding: bytes, as: UTF8.self), first))
        }
        // Lengths on both sides of the eight-byte steps, and each one's prefixes either way.
        for length in 0...19 {
            let text = String(first.prefix(length))
            #expect(Secrets.equal(text, String(first.prefix(length))))
            for index in 0..<length {
                var bytes = Array(text.utf8)
                bytes[index] ^= 1
                #expect(!Secrets.equal(String(decoding: bytes, as: UTF8.self), text))
            }
            for shorter in 0..<length {
                #expect(!Secrets.equal(text, String(first.prefix(shorter))))
                #expect(!Secrets.equal(String(first.prefix(shorter)), text))
            }
        }
        #expect(Secrets.equal("schlüssel-ключ-鍵🔑", "schlüssel-ключ-鍵🔑"))
        #expect(!Secrets.equal("schlüssel-ключ-鍵🔑", "schlussel-ключ-鍵🔑"))
        // Bridged or sliced strings compare by their bytes too.
        #expect(Secrets.equal(String(("x" + first).dropFirst()), first))
    }

    @Test func nodeIdIsStableForAKey() throws {
        let identity = NodeIdentity.generate()
        let again = NodeIdentity(privateKey: identity.privateKey)
        #expect(identity.nodeId == again.nodeId)
        #expect(identity.nodeId.count == 32)
        #expect(NodeIdentity.generate().nodeId != identity.nodeId)
    }
}
