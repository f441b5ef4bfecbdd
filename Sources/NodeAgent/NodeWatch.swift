import ClusterRoutes
import JSON

/// The Nodes as a `ResourceWatcher` delivers them, into `NodeRoutes`: a list's items are parsed
/// one at a time into a new picture, which replaces the old one only when the list is complete.
final class NodeWatch: WatchedResource {
    let routes: NodeRoutes
    private var staged: [String: Result<ClusterNode, Cluster.Error>] = [:]

    init(routes: NodeRoutes) { self.routes = routes }

    func listStarted() { staged = [:] }

    func listed(_ item: JSONValue) {
        if let (name, node) = NodeRoutes.entry(item) { staged[name] = node }
    }

    func listEnded() {
        routes.replaceAll(staged)
        staged = [:]
    }

    func apply(_ event: WatchEvent) -> Bool { routes.apply(event) }
}
