import Addresses
import ClusterRoutes
import Netlink

/// Applies a route plan to the main routing table of the caller's namespace.
///
/// Our routes carry their own route protocol number, so we find them again, and never change a
/// route we did not create: adds use NLM_F_EXCL (a foreign route to the same destination is an
/// error), replaces and deletes match our protocol only.
public struct RouteSync {
    /// The route protocol that marks bridge-ipam's routes (`ip route show proto 212`).
    public static let routeProtocol = NodeNetwork.routeProtocol

    let socket: NetlinkSocket

    public init(socket: NetlinkSocket) { self.socket = socket }

    /// This namespace's own addresses (to find this node in the cluster file).
    public func localAddresses() throws(NetlinkError) -> [IPAddress] {
        try socket.addresses().map(\.network.address)
    }

    /// Our routes in the main table, of both families.
    public func currentRoutes() throws(NetlinkError) -> [(destination: IPNetwork, gateway: IPAddress?)] {
        let main = UInt32(254)
        return try
            (socket.routes(family: .v4, table: main, routeProtocol: RouteSync.routeProtocol)
            + socket.routes(family: .v6, table: main, routeProtocol: RouteSync.routeProtocol))
            .map { ($0.destination, $0.gateway) }
    }

    /// Sends every change in one netlink datagram and reports the first failure.
    public func apply(_ plan: RoutePlan) throws(NetlinkError) {
        guard !plan.isEmpty else { return }
        try socket.batch { batch in
            for route in plan.remove {
                NetlinkSocket.deleteRoute(
                    RouteEntry(destination: route.destination, gateway: route.gateway, routeProtocol: RouteSync.routeProtocol), to: &batch)
            }
            for route in plan.replace {
                NetlinkSocket.addRoute(
                    RouteEntry(destination: route.destination, gateway: route.gateway, routeProtocol: RouteSync.routeProtocol),
                    replace: true, to: &batch)
            }
            for route in plan.add {
                NetlinkSocket.addRoute(
                    RouteEntry(destination: route.destination, gateway: route.gateway, routeProtocol: RouteSync.routeProtocol), to: &batch)
            }
        }
    }
}
