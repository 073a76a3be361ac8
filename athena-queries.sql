-- athena-queries.sql: the named queries over the exported purchases (Athena / Trino dialect).
--
-- Where they run
--   * Athena console: select the database "<stage>-compras-datacatalog" (e.g. "dev-compras-datacatalog") and the
--     workgroup "compras-<stage>", then run any ONE statement below as it is. Create the views first (queries
--     `compras_actuales` and `compras_vigentes`): the other queries read `compras_vigentes`, the compacted
--     state (Iceberg table compras_iceberg, kept by compactarCompras); replace it by `compras_actuales` to read
--     the raw JSON changes instead (same columns; docs/compaction.md says when). Tables are never qualified
--     with the database, so the same file serves every stage; whoever runs it sets the database (console
--     drop-down, or QueryExecutionContext.Database in StartQueryExecution).
--   * Programs (the report function, the local DuckDB runner) load this file with lambdas/domain/queries.py,
--     which splits it on the `-- name:` lines and binds parameters.
--
-- Parameters
--   Every query starts with a one-row CTE `params` holding literals: tenant_id (NULL = every tenant) and an
--   inclusive day range date_from / date_to ('YYYY-MM-DD' strings; the defaults cover every day). The file runs
--   as-is with those defaults; a program replaces the literals through the SQL syntax tree
--   (queries.bind(name, tenant_id=..., date_from=..., date_to=...)), never by pasting text into the SQL.
--   Days compare as 'YYYY-MM-DD' strings (`dia`: the Iceberg table's partition column, or built from the JSON
--   table's partition columns year/month/day; ISO dates sort as strings), so the partitions are what is filtered.
--
-- Money is decimal(18,4) in the table, so sums stay exact; ratios are computed in double.


-- name: compras_actuales
-- Current state of every purchase: the latest exported version of each (tenant_id, compra_id), ordered by the
-- DynamoDB Streams sequence number (numeric order, exact for any number of digits: a longer string of digits
-- is a larger number, equal lengths compare as text; no cast, since sequence numbers may have 40 digits and
-- DECIMAL holds 38; the approximate creation time breaks ties), with purchases
-- whose latest event is REMOVE left out: a correction (MODIFY) replaces the earlier version and a deleted
-- purchase disappears. The exact, always-fresh state (compras_vigentes lags by up to one maintenance run); the
-- queries below read compras_vigentes and run on this view with read_from (same columns). It ranks across all
-- partitions on purpose: a correction may move a purchase to another day; filters belong on the view's output.
CREATE OR REPLACE VIEW compras_actuales AS
WITH versions AS (
    SELECT
        c.tenant_id,
        c.year,
        c.month,
        c.day,
        c.compra_id,
        c.user_id,
        c.fecha,
        c.productos,
        c.resumen,
        c.metadata,
        row_number() OVER (
            PARTITION BY c.tenant_id, c.compra_id
            ORDER BY
                length(c.metadata.sequence_number) DESC,
                c.metadata.sequence_number DESC,
                c.metadata.approximate_creation_time DESC
        ) AS version_rank
    FROM compras_json AS c
)
SELECT
    tenant_id,
    year,
    month,
    day,
    concat(year, '-', month, '-', day) AS dia,
    compra_id,
    user_id,
    fecha,
    productos,
    resumen,
    metadata
FROM versions
WHERE version_rank = 1
    AND metadata.event_name <> 'REMOVE';


-- name: compras_vigentes
-- Current state of every purchase read from the compacted Iceberg table compras_iceberg (Parquet, partitioned by
-- tenant_id and dia), which the maintenance function compactarCompras keeps up to date with MERGE INTO (latest
-- change per purchase by the same ordering as compras_actuales; a REMOVE leaves a tombstone, left out here). Same
-- columns as compras_actuales, so every query below can read either: the queries read this view (cost and
-- latency follow the range asked for, not the whole history); use compras_actuales instead for an audit of the
-- raw changes or for data newer than the last merge (docs/compaction.md).
CREATE OR REPLACE VIEW compras_vigentes AS
SELECT
    tenant_id,
    substr(dia, 1, 4) AS year,
    substr(dia, 6, 2) AS month,
    substr(dia, 9, 2) AS day,
    dia,
    compra_id,
    user_id,
    fecha,
    productos,
    resumen,
    metadata
FROM compras_iceberg
WHERE NOT eliminada;


-- name: compras_recientes
-- Recent purchases with their lines: the 20 latest purchases (by fecha) of the tenant and day range, one row per
-- product line, with the purchase totals repeated on each line. Filters on the partition columns (dia).
WITH params AS (
    SELECT CAST(NULL AS VARCHAR) AS tenant_id, '1970-01-01' AS date_from, '9999-12-31' AS date_to
),
recientes AS (
    SELECT c.*
    FROM compras_vigentes AS c
    CROSS JOIN params AS p
    WHERE (p.tenant_id IS NULL OR c.tenant_id = p.tenant_id)
        AND c.dia BETWEEN p.date_from AND p.date_to
    ORDER BY c.fecha DESC, c.tenant_id, c.compra_id
    LIMIT 20
)
SELECT
    r.tenant_id,
    r.compra_id,
    r.user_id,
    r.fecha,
    r.resumen.total_productos AS total_productos,
    r.resumen.total_cantidad AS total_cantidad,
    r.resumen.total_precio AS total_precio,
    r.resumen.moneda AS moneda,
    l.producto.codigo AS codigo,
    l.producto.nombre AS nombre,
    l.producto.categoria AS categoria,
    l.producto.cantidad AS cantidad,
    l.producto.precio_unitario AS precio_unitario
FROM recientes AS r
CROSS JOIN UNNEST(r.productos) AS l (producto)
ORDER BY r.fecha DESC, r.tenant_id, r.compra_id, codigo, l.producto.ticket_id;


-- name: top_productos
-- Top 10 products of each tenant in the range by units sold (ties: revenue, then product code): units, revenue
-- (lines without a unit price add nothing), number of purchases that contain the product, and its category.
WITH params AS (
    SELECT CAST(NULL AS VARCHAR) AS tenant_id, '1970-01-01' AS date_from, '9999-12-31' AS date_to
),
lineas AS (
    SELECT c.tenant_id, c.compra_id, l.producto
    FROM compras_vigentes AS c
    CROSS JOIN params AS p
    CROSS JOIN UNNEST(c.productos) AS l (producto)
    WHERE (p.tenant_id IS NULL OR c.tenant_id = p.tenant_id)
        AND c.dia BETWEEN p.date_from AND p.date_to
),
por_producto AS (
    SELECT
        tenant_id,
        producto.codigo AS codigo,
        max(producto.nombre) AS nombre,
        max(producto.categoria) AS categoria,
        sum(producto.cantidad) AS unidades,
        coalesce(sum(producto.cantidad * producto.precio_unitario), 0) AS ingresos,
        count(DISTINCT compra_id) AS compras
    FROM lineas
    GROUP BY tenant_id, producto.codigo
),
ranked AS (
    SELECT
        por_producto.*,
        row_number() OVER (PARTITION BY tenant_id ORDER BY unidades DESC, ingresos DESC, codigo) AS puesto
    FROM por_producto
)
SELECT tenant_id, puesto, codigo, nombre, categoria, unidades, ingresos, compras
FROM ranked
WHERE puesto <= 10
ORDER BY tenant_id, puesto;


-- name: tendencias_diarias
-- Daily trends per tenant: purchases, units, revenue and average basket value per day of the range.
WITH params AS (
    SELECT CAST(NULL AS VARCHAR) AS tenant_id, '1970-01-01' AS date_from, '9999-12-31' AS date_to
)
SELECT
    c.tenant_id,
    c.dia,
    count(*) AS compras,
    sum(c.resumen.total_cantidad) AS unidades,
    sum(c.resumen.total_precio) AS ingresos,
    round(CAST(sum(c.resumen.total_precio) AS DOUBLE) / count(*), 2) AS ticket_medio
FROM compras_vigentes AS c
CROSS JOIN params AS p
WHERE (p.tenant_id IS NULL OR c.tenant_id = p.tenant_id)
    AND c.dia BETWEEN p.date_from AND p.date_to
GROUP BY c.tenant_id, c.dia
ORDER BY c.tenant_id, c.dia;


-- name: pares_productos
-- Products bought together (market-basket analysis) per tenant: for each unordered pair of products (a < b by
-- code) that share at least 2 purchases, with N = purchases of the tenant in the range:
--   support      = purchases with both / N
--   confidence   = purchases with both / purchases with a   (a -> b), and the reverse (b -> a)
--   lift         = support / (share with a * share with b)   (> 1: bought together more than by chance)
-- The 20 pairs with most purchases in common per tenant (ties: higher lift, then codes), with the products'
-- names (the greatest name seen for the code, should a code carry several).
WITH params AS (
    SELECT CAST(NULL AS VARCHAR) AS tenant_id, '1970-01-01' AS date_from, '9999-12-31' AS date_to
),
compras AS (
    SELECT c.tenant_id, c.compra_id, c.productos
    FROM compras_vigentes AS c
    CROSS JOIN params AS p
    WHERE (p.tenant_id IS NULL OR c.tenant_id = p.tenant_id)
        AND c.dia BETWEEN p.date_from AND p.date_to
),
totales AS (
    SELECT tenant_id, count(*) AS n_compras
    FROM compras
    GROUP BY tenant_id
),
items AS (
    SELECT DISTINCT c.tenant_id, c.compra_id, l.producto.codigo AS codigo
    FROM compras AS c
    CROSS JOIN UNNEST(c.productos) AS l (producto)
),
por_producto AS (
    SELECT tenant_id, codigo, count(*) AS n_producto
    FROM items
    GROUP BY tenant_id, codigo
),
nombres AS (
    SELECT c.tenant_id, l.producto.codigo AS codigo, max(l.producto.nombre) AS nombre
    FROM compras AS c
    CROSS JOIN UNNEST(c.productos) AS l (producto)
    GROUP BY c.tenant_id, l.producto.codigo
),
pares AS (
    SELECT a.tenant_id, a.codigo AS producto_a, b.codigo AS producto_b, count(*) AS n_juntos
    FROM items AS a
    JOIN items AS b
        ON a.tenant_id = b.tenant_id
        AND a.compra_id = b.compra_id
        AND a.codigo < b.codigo
    GROUP BY a.tenant_id, a.codigo, b.codigo
    HAVING count(*) >= 2
),
medidas AS (
    SELECT
        x.tenant_id,
        x.producto_a,
        x.producto_b,
        na.nombre AS nombre_a,
        nb.nombre AS nombre_b,
        x.n_juntos,
        t.n_compras,
        CAST(x.n_juntos AS DOUBLE) / t.n_compras AS soporte,
        CAST(x.n_juntos AS DOUBLE) / pa.n_producto AS confianza_a_b,
        CAST(x.n_juntos AS DOUBLE) / pb.n_producto AS confianza_b_a,
        CAST(x.n_juntos AS DOUBLE) * t.n_compras / (CAST(pa.n_producto AS DOUBLE) * pb.n_producto) AS lift
    FROM pares AS x
    JOIN totales AS t ON t.tenant_id = x.tenant_id
    JOIN por_producto AS pa ON pa.tenant_id = x.tenant_id AND pa.codigo = x.producto_a
    JOIN por_producto AS pb ON pb.tenant_id = x.tenant_id AND pb.codigo = x.producto_b
    JOIN nombres AS na ON na.tenant_id = x.tenant_id AND na.codigo = x.producto_a
    JOIN nombres AS nb ON nb.tenant_id = x.tenant_id AND nb.codigo = x.producto_b
),
ranked AS (
    SELECT
        medidas.*,
        row_number() OVER (
            PARTITION BY tenant_id ORDER BY n_juntos DESC, lift DESC, producto_a, producto_b
        ) AS puesto
    FROM medidas
)
SELECT
    tenant_id,
    puesto,
    producto_a,
    producto_b,
    nombre_a,
    nombre_b,
    n_juntos,
    n_compras,
    round(soporte, 4) AS soporte,
    round(confianza_a_b, 4) AS confianza_a_b,
    round(confianza_b_a, 4) AS confianza_b_a,
    round(lift, 4) AS lift
FROM ranked
WHERE puesto <= 20
ORDER BY tenant_id, puesto;


-- name: top_categorias
-- Top 10 categories of each tenant in the range by units sold (ties: revenue, then category): units, revenue
-- (lines without a unit price add nothing), purchases with at least one product of the category, and distinct
-- products sold. Added for the purchase report (generarReporteCompras, docs/report.md).
WITH params AS (
    SELECT CAST(NULL AS VARCHAR) AS tenant_id, '1970-01-01' AS date_from, '9999-12-31' AS date_to
),
lineas AS (
    SELECT c.tenant_id, c.compra_id, l.producto
    FROM compras_vigentes AS c
    CROSS JOIN params AS p
    CROSS JOIN UNNEST(c.productos) AS l (producto)
    WHERE (p.tenant_id IS NULL OR c.tenant_id = p.tenant_id)
        AND c.dia BETWEEN p.date_from AND p.date_to
),
por_categoria AS (
    SELECT
        tenant_id,
        producto.categoria AS categoria,
        sum(producto.cantidad) AS unidades,
        coalesce(sum(producto.cantidad * producto.precio_unitario), 0) AS ingresos,
        count(DISTINCT compra_id) AS compras,
        count(DISTINCT producto.codigo) AS productos
    FROM lineas
    GROUP BY tenant_id, producto.categoria
),
ranked AS (
    SELECT
        por_categoria.*,
        row_number() OVER (PARTITION BY tenant_id ORDER BY unidades DESC, ingresos DESC, categoria) AS puesto
    FROM por_categoria
)
SELECT tenant_id, puesto, categoria, unidades, ingresos, compras, productos
FROM ranked
WHERE puesto <= 10
ORDER BY tenant_id, puesto;
