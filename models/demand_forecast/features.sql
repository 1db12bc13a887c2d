-- One row per half-hour of the days in `conditions`: the calendar and the temperature of the day,
-- and the demand of the 7 days before it. `history` holds those days' demand with the model's
-- label; the day's own demand never enters. Means are taken of DECIMAL values: their sums are
-- exact, so a day gets the same features in a run of one day and in a run of a year, whatever
-- order DuckDB's threads add the rows in (a DOUBLE sum differs in its last bits).
WITH days AS (SELECT DISTINCT demand_date AS day FROM conditions),
recent AS (
    SELECT d.day, h.half_hour, h.label AS demand, d.day - h.demand_date AS days_before,
           -- A day of the same kind: both weekdays or both weekends (holidays are not known
           -- for past days).
           (isodow(h.demand_date) >= 6) = (isodow(d.day) >= 6) AS same_kind
    FROM days d JOIN history h
      ON h.demand_date >= d.day - {history_days} AND h.demand_date < d.day
    WHERE h.label IS NOT NULL
),
by_half_hour AS (
    SELECT day, half_hour,
           max(demand) FILTER (WHERE days_before = 1) AS demand_1d_before,
           max(demand) FILTER (WHERE days_before = 7) AS demand_7d_before,
           avg(demand::DECIMAL(18, 12)) AS half_hour_mean_7d,
           arg_min(demand, days_before) FILTER (WHERE same_kind) AS demand_same_kind_before,
           avg(demand::DECIMAL(18, 12)) FILTER (WHERE same_kind) AS half_hour_same_kind_mean
    FROM recent GROUP BY day, half_hour
),
by_day AS (
    SELECT day,
           avg(demand::DECIMAL(18, 12)) FILTER (WHERE days_before = 1) AS prev_day_mean_demand,
           max(demand) FILTER (WHERE days_before = 1) AS prev_day_max_demand,
           avg(demand::DECIMAL(18, 12)) AS week_mean_demand
    FROM recent GROUP BY day
),
weather AS (
    SELECT demand_date, avg(temperature::DECIMAL(18, 12)) AS day_mean_temperature,
           max(temperature) AS day_max_temperature, min(temperature) AS day_min_temperature
    FROM conditions GROUP BY demand_date
)
SELECT
    c.demand_date, c.half_hour,
    dayname(c.demand_date) AS day_of_week,
    CAST(c.work_day AS INTEGER) AS work_day,
    c.temperature,
    w.day_mean_temperature, w.day_max_temperature, w.day_min_temperature,
    h.demand_1d_before, h.demand_7d_before, h.half_hour_mean_7d,
    h.demand_same_kind_before, h.half_hour_same_kind_mean,
    b.prev_day_mean_demand, b.prev_day_max_demand, b.week_mean_demand
FROM conditions c
JOIN weather w ON w.demand_date = c.demand_date
LEFT JOIN by_half_hour h ON h.day = c.demand_date AND h.half_hour = c.half_hour
LEFT JOIN by_day b ON b.day = c.demand_date
ORDER BY c.demand_date, c.half_hour
