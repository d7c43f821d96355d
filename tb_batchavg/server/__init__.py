"""The plugin's HTTP side: routes -> statistics over the columns.

`plugin` is the TensorBoard plugin (a routes table, static files, errors mapped at one edge); one
module per route (`runs`, `run_order`, `averages`, `correlation`, `diagnostics`, `export`), each a
`handle(store, request)` returning a werkzeug response; `params` parses requests; `store` owns the
columns' and results' memory budget and the compute slots; `series` finds the series a request
names; `encoding` writes JSON and CSV.
"""
