#if canImport(Glibc)
import Glibc
#endif
import Testing
import SystemIO

@Suite struct FileIOTests {
    let directory: String = {
        var template = Array("/tmp/bridge-ipam-fileio-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }()

    func write(_ name: String, _ text: String) throws {
        let fd = open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        try FileIO.writeAll(fd, Array(text.utf8), path: name)
    }

    @Test func readsAWholeFileUpToItsCapAndRefusesOneByteMore() throws {
        try write("f", String(repeating: "x", count: 40_000))
        #expect(try FileIO.read(directory + "/f", limit: 40_000).count == 40_000)
        let error = #expect(throws: SystemError.self) { try FileIO.read(directory + "/f", limit: 39_999) }
        #expect(error?.errno == EFBIG)
        #expect(error?.description.contains("larger than 39999 bytes") == true)
    }

    @Test func aFIFOIsRefusedWithoutBlocking() {
        alarm(20)
        defer { alarm(0) }
        mkfifo(directory + "/fifo", 0o600)
        let error = #expect(throws: SystemError.self) { try FileIO.read(directory + "/fifo", limit: 100) }
        #expect(error?.errno == EINVAL)
        #expect(FileIO.readText(directory + "/fifo", limit: 100) == nil)
    }

    @Test func aSymlinkIsFollowedOnlyWhenAllowed() throws {
        try write("target", "10.0.0.1")
        symlink(directory + "/target", directory + "/link")
        #expect(FileIO.readText(directory + "/link", limit: 100) == "10.0.0.1")
        let error = #expect(throws: SystemError.self) { try FileIO.read(directory + "/link", limit: 100, followSymlinks: false) }
        #expect(error?.errno == ELOOP)
    }

    @Test func readsRelativeToADirectoryDescriptor() throws {
        try write("lease", "ctr\r\neth0")
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(dir) }
        #expect(FileIO.readText("lease", in: dir, limit: 512) == "ctr\r\neth0")
        #expect(FileIO.readText("missing", in: dir, limit: 512) == nil)
    }

    @Test func aMissingFileNamesThePathAndErrno() {
        let error = #expect(throws: SystemError.self) { try FileIO.read(directory + "/none", limit: 10) }
        #expect(error?.description == "open \(directory)/none: No such file or directory")
    }

    @Test func readAllReadsAPipeToItsEnd() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        try FileIO.writeAll(fds[1], Array(repeating: 7, count: 3000), path: "pipe")
        close(fds[1])
        defer { close(fds[0]) }
        #expect(try FileIO.readAll(fds[0], path: "pipe") == Array(repeating: 7, count: 3000))
    }

    @Test func trimmingWhitespaceTakesASCIIWhitespaceFromBothEnds() {
        #expect(" \t10.0.0.1\r\n".trimmingWhitespace() == "10.0.0.1")
        #expect("1\n".trimmingWhitespace() == "1")
        #expect(" \n ".trimmingWhitespace() == "")
        #expect("a b".trimmingWhitespace() == "a b")
        #expect("  é ".trimmingWhitespace() == "é")
    }

    @Test func anErrorCarriesTheKernelsMessage() {
        let error = SystemError("create veth veth1", errno: EEXIST, kernelMessage: "name in use")
        #expect(error.description == "create veth veth1: File exists (name in use)")
        #expect(error.isExists)
    }
}
