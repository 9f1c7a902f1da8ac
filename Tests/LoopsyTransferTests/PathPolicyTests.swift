import Foundation
import LoopsyAPI
import LoopsyConfig
import Testing
@testable import LoopsyTransfer

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

    /// A repository's .git and a project's agent settings run code wherever they are: git runs
    /// .git/config's core.fsmonitor and .git/hooks, and a session started in a directory loads
    /// its .claude/settings.json hooks and .mcp.json servers. Not for other callers, at any depth.
    @Test func codeRunningNamesAreForTheOwnerAtAnyDepth() throws {
        let tree = try Tree()
        let home = tree.root + "/home"
        let guest = TransferAccess(owner: false)
        let strict = tree.policy()
        for name in ["work/repo/.git/config", "work/repo/.git/hooks/pre-commit", "work/.claude/settings.json",
                     "work/app/.mcp.json", "a/b/.vscode/tasks.json", "p/.envrc", "p/.hg/hgrc", "p/.cursor/mcp.json"] {
            #expect(strict.refusal(home + "/" + name, asked: name, access: guest)?.code == "path_forbidden", "\(name)")
            #expect(strict.refusal(home + "/" + name, asked: name, access: TransferAccess(owner: true)) == nil, "\(name)")
        }
        for name in ["work/repo/.gitignore", "work/repo/src/git/config", "work/.github/workflows/ci.yml", "p/.envrc.example"] {
            #expect(strict.refusal(home + "/" + name, asked: name, access: guest) == nil, "\(name)")
        }
        let relaxed = tree.policy(allowedDotfiles: ["~/shared/repo/.git"])
        #expect(relaxed.refusal(home + "/shared/repo/.git/objects/ab", asked: "x", access: guest) == nil)
        #expect(relaxed.refusal(home + "/other/.git/config", asked: "x", access: guest) != nil)
    }

    /// git takes a directory with HEAD, objects and refs for a bare repository, whatever its
    /// name, and runs its config there: the write that would complete one is found, in any order.
    @Test func theWriteThatWouldCompleteARepositoryIsFound() throws {
        let tree = try Tree()
        let repo = tree.root + "/home/x"
        #expect(mkdir(repo, 0o755) == 0)
        #expect(PathPolicy.repositoryCompleted(by: repo + "/HEAD") == nil)
        #expect(FileManager.default.createFile(atPath: repo + "/HEAD", contents: Data("ref: refs/heads/main\n".utf8)))
        #expect(PathPolicy.repositoryCompleted(by: repo + "/objects/ab/cdef") == nil)
        #expect(mkdir(repo + "/objects", 0o755) == 0)
        #expect(PathPolicy.repositoryCompleted(by: repo + "/refs/heads/main") == repo)
        #expect(PathPolicy.repositoryCompleted(by: repo + "/config") == nil)
        #expect(PathPolicy.repositoryCompleted(by: tree.root + "/home/y/HEAD") == nil)
        #expect(mkdir(repo + "/refs", 0o755) == 0)
        #expect(PathPolicy.repositoryCompleted(by: repo + "/HEAD") == repo)
    }

    @Test func symlinksLeavingTheRootAreFollowedByRewritingThePathUnderTheSameRules() throws {
        let tree = try Tree()
        let fm = FileManager.default
        var config = LoopsyConfig().transfer
        config.allowedPaths = [tree.root + "/home", tree.root + "/main/sessions/one/work"]
        config.deniedPaths = [tree.root + "/home/a/b/denied"]
        try fm.createDirectory(atPath: tree.root + "/main/sessions/one/work", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: tree.root + "/home/a/b/denied", withIntermediateDirectories: true)
        let policy = PathPolicy(config: config, dataDir: DataDir(root: tree.root + "/elsewhere"),
                                environment: ["HOME": tree.root + "/home"])
        let owner = TransferAccess(owner: true)
        // An absolute link to a place inside the same root, and a relative one through "..".
        try fm.createSymbolicLink(atPath: tree.root + "/home/abs", withDestinationPath: tree.root + "/home/a")
        try fm.createSymbolicLink(atPath: tree.root + "/home/a/rel", withDestinationPath: "../a/b")
        let viaAbsolute = try policy.open(tree.root + "/home/abs/b/f", flags: O_RDONLY, access: owner)
        #expect(viaAbsolute.real == tree.root + "/home/a/b/f")
        close(viaAbsolute.fd)
        let viaRelative = try policy.open(tree.root + "/home/abs/rel/f", flags: O_RDONLY, access: owner)
        #expect(viaRelative.real == tree.root + "/home/a/b/f")
        close(viaRelative.fd)
        let target = try policy.openForWriting(tree.root + "/home/abs/rel/new/x", access: owner)
        #expect(target.directory == tree.root + "/home/a/b" && target.missing == ["new"] && target.name == "x")
        close(target.directoryFD)
        // Into a denied directory, out of every allowed path, in a loop: refused.
        try fm.createSymbolicLink(atPath: tree.root + "/home/d", withDestinationPath: tree.root + "/home/a/b/denied")
        #expect(Self.code { _ = try policy.openForWriting(tree.root + "/home/d/x", access: owner) } == "path_forbidden")
        #expect(Self.code { _ = try policy.open(tree.root + "/home/out/passwd", flags: O_RDONLY, access: owner) } == "path_forbidden")
        try fm.createSymbolicLink(atPath: tree.root + "/home/loop1", withDestinationPath: tree.root + "/home/loop2")
        try fm.createSymbolicLink(atPath: tree.root + "/home/loop2", withDestinationPath: tree.root + "/home/loop1")
        #expect(Self.code { _ = try policy.open(tree.root + "/home/loop1/x", flags: O_RDONLY, access: owner) } == "path_forbidden")
        // A second allowed root reached by a link from the first (inside a data dir's sessions
        // tree, which this node does not own): allowed.
        try fm.createSymbolicLink(atPath: tree.root + "/home/work", withDestinationPath: tree.root + "/main/sessions/one/work")
        try "w".write(toFile: tree.root + "/main/sessions/one/work/w", atomically: true, encoding: .utf8)
        let other = try policy.open(tree.root + "/home/work/w", flags: O_RDONLY, access: owner)
        #expect(other.real == tree.root + "/main/sessions/one/work/w")
        close(other.fd)
    }

    /// A "/" with a combining mark after it is one Character to Swift and a separator to the
    /// kernel: split or compared as Characters, `<denied>/\u{301}x` was outside the rule, and
    /// `<root>/../\u{301}x` had no `..`. Every rule reads bytes now.
    @Test func aSlashFollowedByACombiningMarkIsASlash() throws {
        let tree = try Tree()
        let policy = tree.policy()
        let guest = TransferAccess(owner: false)
        let owner = TransferAccess(owner: true)
        let home = tree.root + "/home"
        for path in [home + "/.config/systemd/\u{301}evil.service", home + "/.ssh/\u{301}authorized_keys",
                     tree.root + "/main/sessions/one/\u{301}config.yaml"] {
            #expect(Self.code { _ = try policy.openForWriting(path, access: guest) } == "path_forbidden", "\(path)")
        }
        #expect(Self.code { _ = try policy.openForWriting(tree.root + "/main/\u{301}x", access: owner) } == "path_forbidden")
        // `..` hidden behind a combining mark is still `..`; so is a NUL behind one.
        let climbing = try #require(Self.code { _ = try policy.openForWriting(home + "/a/../\u{301}x", access: owner) })
        #expect(climbing == "path_forbidden")
        #expect(Self.code { _ = try policy.open(home + "/a/b/f\0\u{301}", flags: O_RDONLY, access: owner) } == "bad_path")
        // A caller narrowed to home/a does not reach its sibling through a hidden slash.
        let narrow = TransferAccess(owner: false, roots: [home + "/a"])
        #expect(Self.code { _ = try policy.openForWriting(home + "/a/../\u{301}b/x", access: narrow) } == "path_forbidden")
        // The name written is one name: its parents are the kernel's.
        let target = try policy.openForWriting(home + "/a/b/\u{301}new", access: guest)
        defer { close(target.directoryFD) }
        #expect(target.name == "\u{301}new")
        #expect(target.directory == home + "/a/b")
        #expect(target.missing.isEmpty)
        // Names that Swift calls equal but the disk does not (é and e + U+0301) are different roots.
        #expect(!PathPolicy.isInside("/srv/cafe\u{301}/x", "/srv/caf\u{E9}"))
        #expect(PathPolicy.isInside("/srv/caf\u{E9}/x", "/srv/caf\u{E9}"))
        #expect(!PathPolicy.isInside("/srv/caf\u{E9}x", "/srv/caf\u{E9}"))
        #expect(PathPolicy.lexical("/a/./b//\u{301}c/") == "/a/b/\u{301}c")
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
