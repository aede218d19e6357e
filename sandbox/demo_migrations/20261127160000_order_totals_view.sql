create view order_totals as
    select customer_id, count(*) as orders, sum(total_cents) as total_cents from orders group by customer_id;

-- rollback
-- drop view order_totals;
