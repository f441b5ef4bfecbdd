import JSON
import XCTest

@testable import NodeAgent

final class ListSplitterTests: XCTestCase {
    let list = #"""
        {"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"42","continue":"42:2","remainingItemCount":3},
         "items":[{"metadata":{"name":"a","annotations":{"x":"]}\"{["}},"items":[1,2]},
                  {"metadata":{"name":"b"},"status":{"images":[{"names":["x"]}]}}]}
        """#

    func testItemsComeOneByOneWhereverTheBytesAreCut() throws {
        let bytes = Array(list.utf8)
        for chunkSize in [1, 2, 7, 64, bytes.count] {
            var splitter = ListSplitter()
            var items: [[UInt8]] = []
            for start in stride(from: 0, to: bytes.count, by: chunkSize) {
                items += try Array(bytes[start..<min(start + chunkSize, bytes.count)]).withUnsafeBytes { try splitter.feed($0) }
            }
            XCTAssertEqual(items.count, 2, "chunks of \(chunkSize)")
            let first = try JSONValue.parse(items[0])
            XCTAssertEqual(first["metadata"]?["name"], .string("a"))
            XCTAssertEqual(first["metadata"]?["annotations"]?["x"], .string("]}\"{["))
            XCTAssertEqual(try JSONValue.parse(items[1])["metadata"]?["name"], .string("b"))
            let rest = try splitter.remainder()
            XCTAssertEqual(rest["metadata"]?["continue"], .string("42:2"))
            XCTAssertEqual(rest["metadata"]?["resourceVersion"], .string("42"))
            XCTAssertEqual(rest["items"], .array([]))
        }
    }

    func testEmptyListAndLimit() throws {
        var splitter = ListSplitter()
        XCTAssertEqual(try Array(#"{"items":[],"metadata":{"resourceVersion":"1"}}"#.utf8).withUnsafeBytes { try splitter.feed($0) }, [])
        XCTAssertEqual(try splitter.remainder()["metadata"]?["resourceVersion"], .string("1"))
        var small = ListSplitter(maxItemLength: 8)
        XCTAssertThrowsError(try Array(#"{"items":[{"metadata":{"name":"long"}}]}"#.utf8).withUnsafeBytes { try small.feed($0) })
    }
}

final class BackoffTests: XCTestCase {
    func testGrowsToTheCapWithJitterAndResets() {
        var low = Backoff(initial: 1, maximum: 8, random: { 0 })
        var high = Backoff(initial: 1, maximum: 8, random: { 0.999999 })
        XCTAssertEqual((0..<6).map { _ in low.next() }, [0.5, 1, 2, 4, 4, 4])
        XCTAssertEqual((0..<6).map { _ in (high.next() * 100).rounded() / 100 }, [1, 2, 4, 8, 8, 8])
        low.reset()
        XCTAssertEqual(low.next(), 0.5)
        var real = Backoff(initial: 1, maximum: 30)
        let waits = (0..<200).map { _ in real.next() }
        XCTAssertTrue(waits.allSatisfy { $0 >= 0.5 && $0 <= 30 })
        XCTAssertGreaterThan(Set(waits.suffix(100)).count, 50, "jitter: agents that failed together do not retry together")
    }

    func testAFreeRetryOnlyAfterHealth() {
        var b = Backoff(initial: 1, maximum: 8, random: { 0 })
        XCTAssertEqual(b.nextAfterFreeRetry(), 0)
        XCTAssertEqual(b.nextAfterFreeRetry(), 0.5)
        XCTAssertEqual(b.nextAfterFreeRetry(), 1)
        XCTAssertEqual(b.nextAfterFreeRetry(), 2)
        b.reset()
        XCTAssertEqual(b.nextAfterFreeRetry(), 0)
    }

    func testErrorsThatRelist() {
        XCTAssertTrue(KubeRequestError.status(code: 410, reason: "Expired", message: "too old").isExpired)
        let tooLarge = KubeRequestError.status(code: 504, reason: "Timeout", message: "Too large resource version: 900, current: 100")
        XCTAssertTrue(tooLarge.isTooLargeResourceVersion)
        XCTAssertFalse(KubeRequestError.status(code: 500, reason: "", message: "boom").isTooLargeResourceVersion)
        XCTAssertEqual(tooLarge.codeLabel, "504")
        XCTAssertEqual(KubeRequestError.transport("refused").codeLabel, "transport")
    }
}

final class MetricsTests: XCTestCase {
    func testTextFormat() {
        var m = AgentMetrics()
        m.routesDesired = 3
        m.routesInstalled = 2
        m.routesFailed = 1
        m.apiErrors = ["410": 2, "transport": 1]
        m.lastSuccessfulSync = 1_700_000_000.25
        m.syncDurations.observe(0.003)
        m.syncDurations.observe(0.2)
        let text = m.render()
        XCTAssertTrue(text.contains("bridge_ipam_routes_failed 1\n"))
        XCTAssertTrue(text.contains("bridge_ipam_api_errors_total{code=\"410\"} 2\n"))
        XCTAssertTrue(text.contains("bridge_ipam_last_successful_sync_timestamp_seconds 1700000000.25\n"))
        XCTAssertTrue(text.contains("bridge_ipam_sync_duration_seconds_bucket{le=\"0.0025\"} 0\n"))
        XCTAssertTrue(text.contains("bridge_ipam_sync_duration_seconds_bucket{le=\"0.005\"} 1\n"))
        XCTAssertTrue(text.contains("bridge_ipam_sync_duration_seconds_bucket{le=\"+Inf\"} 2\n"))
        XCTAssertTrue(text.contains("bridge_ipam_sync_duration_seconds_count 2\n"))
        XCTAssertEqual(AgentMetrics.number(0.0025), "0.0025")
        XCTAssertEqual(AgentMetrics.number(10), "10")
    }

    func testOptions() throws {
        let o = try AgentOptions.parse(["--node", "n", "--metrics-address", "[::1]:9461", "--list-page-size", "2"], environment: [:])
        XCTAssertEqual(o.metricsAddress, "[::1]:9461")
        XCTAssertEqual(o.listPageSize, 2)
        XCTAssertThrowsError(try AgentOptions.parse(["--node", "n", "--metrics-address", "9461"], environment: [:]))
        XCTAssertThrowsError(try AgentOptions.parse(["--node", "n", "--list-page-size", "0"], environment: [:]))
    }

    func testStatusServerAnswersOverTCP() throws {
        let server = try StatusServer(address: "127.0.0.1:0") { path in
            .init(status: path.hasPrefix("/readyz") ? 503 : 200, body: "at \(path)\n")
        }
        func get(_ request: String) -> String {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(server.port).bigEndian
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            XCTAssertEqual(connected, 0)
            _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            for _ in 0..<50 {
                server.serve(now: 0)
                usleep(2000)
            }
            var reply = [UInt8](repeating: 0, count: 4096)
            let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            return n > 0 ? String(decoding: reply[..<n], as: UTF8.self) : ""
        }
        let ready = get("GET /readyz?verbose HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(ready.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), ready)
        XCTAssertTrue(ready.hasSuffix("\r\n\r\nat /readyz?verbose\n"), ready)
        XCTAssertTrue(get("GET /healthz HTTP/1.0\n\n").hasPrefix("HTTP/1.1 200 OK"))
        XCTAssertTrue(get("POST /healthz HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 405"))
        XCTAssertTrue(get("garbage\r\n\r\n").hasPrefix("HTTP/1.1 400"))
    }
}
