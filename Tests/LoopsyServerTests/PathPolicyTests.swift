import Foundation
import LoopsyAPI
import LoopsyConfig
import Testing
@testable import LoopsyServer

/// PathPolicy's rules and its two ways of opening beneath a root (openat2, and the O_NOFOLLOW
/// walk used without it).
@Suite struct PathPolicyTests {
    final class Tree {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loopsy-pp-\(UUID().uuidString)").path
        init() throws {
            let fm = FileManager.default
            for directory in ["home/a/b", "home/.config/systemd", "home/.ssh", "main/sessions/one", "main/sessions/two"] {
                try fm.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            }
            try "f".write(toFile: root + "/home/a/b/f", atomically: true, encoding: .utf8)
            try fm.createSymbolicLink(atPath: root + "/home/out", withDestinationPath: "/etc")
            try fm.createSymbolicLink(atPath: root + "/home/a/lb", withDestinationPath: "b")
            try fm.createSymbolicLink(atPath: root + "/home/up", withDestinationPath: "../main")
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        func policy(allowedDotfiles: [String] = [], dataDir: String? = nil) -> PathPolicy {
            var config = LoopsyConfig().transfer
            config.allowedPaths = [root]
            config.deniedPaths = []
            config.allowedDotfiles = allowedDotfiles
            return PathPolicy(config: config, dataDir: DataDir(root: dataDir ?? root + "/main/sessions/one"),
                              environment: ["HOME": root + "/home"])
        }
    }

    static func code(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as APIError {
            return error.code
        } catch {
            return "\(error)"
        }
    }

    /// 0 when `open` gave a descriptor (closed here), else its errno.
    static func failure(_ open: () -> Int32) -> Int32 {
        let fd = open()
        let code = errno
        if fd >= 0 {
            close(fd)
            return 0
        }
        return code
    }

    @Test func theWalkRefusesEverySymlinkAndOpenat2OnlyThoseLeavingTheRoot() throws {
        let tree = try Tree()
        let rootFD = open(tree.root + "/home", O_RDONLY | O_DIRECTORY)
        #expect(rootFD >= 0)
        defer { close(rootFD) }
        #expect(Self.failure { PathPolicy.walk(rootFD, "a/b/f", flags: O_RDONLY) } == 0)
        #expect(Self.failure { PathPolicy.walk(rootFD, "out/passwd", flags: O_RDONLY) } == EXDEV)
        #expect(Self.failure { PathPolicy.walk(rootFD, "a/lb/f", flags: O_RDONLY) } == EXDEV)
        #expect(Self.failure { PathPolicy.walk(rootFD, "a/lb", flags: O_RDONLY) } == EXDEV)
        #expect(Self.failure { PathPolicy.walk(rootFD, "a/missing/f", flags: O_RDONLY) } == ENOENT)
        // openat2 follows a relative link that stays beneath, and refuses ones that leave.
        #expect(Self.failure { PathPolicy.openBeneath(rootFD, "a/lb/f", flags: O_RDONLY) } == 0)
        #expect(Self.failure { PathPolicy.openBeneath(rootFD, "out/passwd", flags: O_RDONLY) } == EXDEV)
        #expect(Self.failure { PathPolicy.openBeneath(rootFD, "up/sessions", flags: O_RDONLY) } == EXDEV)
    }

    @Test func dataDirsOfTheNodeItsMainAndEverySessionAreDenied() throws {
        let tree = try Tree()
        let policy = tree.policy()
        let owner = TransferAccess(owner: true)
        for path in ["/main/sessions/one/config.yaml", "/main/sessions/two/identity.pem", "/main/config.yaml",
                     "/home/.loopsy/config.yaml"] {
            #expect(policy.refusal(tree.root + path, asked: path, access: owner)?.code == "path_forbidden", "\(path)")
        }
        #expect(policy.refusal(tree.root + "/main2/x", asked: "x", access: owner) == nil)
        // Reached through a symlink inside the allowed root: the opened directory's real path decides.
        try FileManager.default.createSymbolicLink(atPath: tree.root + "/sess", withDestinationPath: "main/sessions")
        #expect(Self.code { _ = try policy.open(tree.root + "/sess/two", flags: O_RDONLY | O_DIRECTORY, access: owner) }
                == "path_forbidden")
        let opened = try policy.open(tree.root + "/home/a/lb/f", flags: O_RDONLY, access: owner)
        #expect(opened.real == tree.root + "/home/a/b/f")
        close(opened.fd)
    }

    @Test func dotfilesAreForTheOwnerUnlessAllowed() throws {
        let tree = try Tree()
        let home = tree.root + "/home"
        let guest = TransferAccess(owner: false)
        let strict = tree.policy()
        for name in [".bashrc", ".profile", ".ssh/authorized_keys", ".config/systemd/user/x.service", ".local/bin/ls",
                     "bin/ls", ".gitconfig", ".claude/settings.json", ".claude.json"] {
            #expect(strict.refusal(home + "/" + name, asked: name, access: guest)?.code == "path_forbidden", "\(name)")
            #expect(strict.refusal(home + "/" + name, asked: name, access: TransferAccess(owner: true)) == nil, "\(name)")
        }
        #expect(strict.refusal(home + "/.bashrc.bak", asked: "x", access: guest) == nil)
        #expect(strict.refusal(home + "/notes/.bashrc", asked: "x", access: guest) == nil)
        let relaxed = tree.policy(allowedDotfiles: ["~/.bashrc", "~/.ssh/config"])
        #expect(relaxed.refusal(home + "/.bashrc", asked: "x", access: guest) == nil)
        #expect(relaxed.refusal(home + "/.ssh/config", asked: "x", access: guest) == nil)
        #expect(relaxed.refusal(home + "/.ssh/id_ed25519", asked: "x", access: guest) != nil)
    }

    @Test func aCallersRootsNarrowTheAllowedPaths() throws {
        let tree = try Tree()
        let policy = tree.policy()
        let narrow = TransferAccess(owner: false, roots: [tree.root + "/home/a"])
        let opened = try policy.open(tree.root + "/home/a/b/f", flags: O_RDONLY, access: narrow)
        close(opened.fd)
        #expect(Self.code { _ = try policy.open(tree.root + "/home/out", flags: O_RDONLY, access: narrow) } == "path_forbidden")
        // A link inside the caller's root that leads elsewhere in the allowed root is refused too.
        try FileManager.default.createSymbolicLink(atPath: tree.root + "/home/a/sideways", withDestinationPath: "../.ssh")
        #expect(Self.code { _ = try policy.open(tree.root + "/home/a/sideways", flags: O_RDONLY | O_DIRECTORY, access: narrow) }
                == "path_forbidden")
    }
}
