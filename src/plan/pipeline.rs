//! load -> pki -> render -> connect -> facts -> plan: the one pipeline plan, apply and reset share.
