import SystemIO

/// A failed netlink or namespace operation: the operation, the errno and, when the kernel gave
/// one through extended acks, its own explanation. The project's one errno-carrying error.
public typealias NetlinkError = SystemError
