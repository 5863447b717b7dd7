// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title TestRouter
/// @notice A value-forwarding router for walletgate's tests, in the shape most routers
///         share: the recipient of the money is an argument, not the transaction's `to`.
contract TestRouter {
    event Paid(address indexed payer, address indexed recipient, uint256 amount);

    /// @notice Forwards all of msg.value to `recipient`.
    function payTo(address recipient) external payable {
        _send(recipient, msg.value);
    }

    /// @notice Forwards `amount` of msg.value to `recipient` and the rest back to the payer.
    function pay(address recipient, uint256 amount) external payable {
        require(amount <= msg.value, "amount is more than the value sent");
        _send(recipient, amount);
        if (msg.value > amount) {
            _send(msg.sender, msg.value - amount);
        }
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        require(ok, "payment failed");
        emit Paid(msg.sender, to, amount);
    }
}
