import JSON
import XCTest

@testable import NodeAgent

/// ResourceWatcher over a real TransferLoop, against a stand-in server on this thread's own
/// loop (a StatusServer answering plain HTTP), for a kind other than Nodes: the machinery is
/// the same for any collection.
final class ResourceWatcherTests: XCTestCase {
    final class Namespaces: WatchedResource {
        var picture: Set<String> = []
        var staged: Set<String> = []
        var lists = 0
        func listStarted() { staged = [] }
        func listed(_ item: JSONValue) { item["metadata"]?["name"]?.stringValue.map { _ = staged.insert($0) } }
        func listEnded() {
            picture = staged
            lists += 1
        }
        func apply(_ event: WatchEvent) -> Bool {
            guard let name = event.object["metadata"]?["name"]?.stringValue else { return false }
            switch event.kind {
            case .added, .modified: return picture.insert(name).inserted
            case .deleted: return picture.remove(name) != nil
            default: return false
            }
        }
    }

    func namespace(_ name: String, _ version: Int) -> String {
        #"{"kind":"Namespace","metadata":{"name":"\#(name)","resourceVersion":"\#(version)"}}"#
    }

    func testListPagesWatchAnd410() throws {
        var requests: [String] = []
        var watches = 0
        let server = try StatusServer(address: "127.0.0.1:0") { [self] target in
            requests.append(target)
            func list(_ items: [String], rv: Int, next: String?) -> StatusServer.Response {
                let more = next.map { #","continue":"\#($0)""# } ?? ""
                return .init(
                    status: 200, contentType: "application/json",
                    body:
                        #"{"kind":"NamespaceList","metadata":{"resourceVersion":"\#(rv)"\#(more)},"items":[\#(items.joined(separator: ","))]}"#
                )
            }
            if target.contains("watch=1") {
                watches += 1
                switch watches {
                case 1:
                    return .init(
                        status: 200,
                        body: #"{"type":"ADDED","object":\#(namespace("d", 11))}"# + "\n"
                            + #"{"type":"DELETED","object":\#(namespace("a", 12))}"# + "\n")
                case 2:
                    return .init(
                        status: 200,
                        body:
                            #"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 12 (15)"}}"#
                            + "\n")
                default:
                    return .init(status: 500, body: "stop here\n")
                }
            }
            if target.contains("continue=c%2F1") { return list([namespace("c", 10)], rv: 10, next: nil) }
            if requests.filter({ $0.contains("limit=") }).count == 1 {
                return list([namespace("a", 10), namespace("b", 10)], rv: 10, next: "c/1")
            }
            return list([namespace("x", 20)], rv: 20, next: nil)
        }
        var connection = KubeConnection(server: "http://127.0.0.1:\(server.port)")
        connection.token = "t"
        let loop = try TransferLoop()
        let namespaces = Namespaces()
        let watcher = ResourceWatcher(
            path: "/api/v1/namespaces", resource: namespaces, request: try KubeRequest(connection: connection), loop: loop,
            backoff: Backoff(initial: 0.01, maximum: 0.02), pageSize: 2, watchTimeout: 5)
        var listed: [String] = []
        var relists: [String] = []
        var failures: [String] = []
        watcher.observer.listed = { items, pages, version in listed.append("\(items) in \(pages) at \(version)") }
        watcher.observer.relisting = { relists.append($0) }
        watcher.observer.failed = { error, during, _ in failures.append("\(during): \(error)") }
        var pictures: [Set<String>] = []
        let deadline = Clock.monotonic() + 10
        while watches < 3 && Clock.monotonic() < deadline {
            watcher.poll(now: Clock.monotonic())
            server.serve(now: Clock.monotonic())
            loop.run(timeout: 0.01, extraFDs: server.descriptors)
            watcher.drain()
            if watcher.takeChanges().changed { pictures.append(namespaces.picture) }
        }
        XCTAssertEqual(listed, ["3 in 2 at 10", "1 in 1 at 20"])
        XCTAssertEqual(pictures.first, ["a", "b", "c"])
        XCTAssertTrue(pictures.contains(["b", "c", "d"]), "\(pictures)")
        XCTAssertEqual(namespaces.picture, ["x"])
        XCTAssertEqual(relists.count, 1)
        XCTAssertTrue(relists.first?.contains("410 Gone") ?? false, "\(relists)")
        XCTAssertTrue(requests[0].hasPrefix("/api/v1/namespaces?limit=2"), "\(requests)")
        XCTAssertTrue(
            requests.contains { $0.contains("watch=1&resourceVersion=10&allowWatchBookmarks=true&timeoutSeconds=5") }, "\(requests)")
        XCTAssertTrue(requests.contains { $0.contains("resourceVersion=12") }, "\(requests)")
        XCTAssertEqual(failures.first, "watch: HTTP 410 Expired: too old resource version: 12 (15)")
    }
}
