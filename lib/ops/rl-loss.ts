// PLACEHOLDER: replaced by the real wrappers.
export {};
